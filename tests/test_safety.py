"""Crash and concurrency safety, with real processes against real databases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.helpers import EXAMPLES, load_core, run, subprocess_env, tables

pytestmark = pytest.mark.slow


def _cli(*args: str, cwd: Path, capture: bool = True) -> subprocess.Popen[str]:
    stream = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "extschema", *args],
        cwd=cwd,
        text=True,
        stdout=stream,
        stderr=stream,
        env=subprocess_env(),
    )


def _big_schema(path: Path, tables_count: int = 1500) -> Path:
    lines = [
        "apiVersion: extschema.io/v1alpha1",
        "kind: ExtensionSchema",
        "metadata: {name: big}",
        "spec:",
        "  pluginId: big",
        "  version: 1.0.0",
        "  tables:",
    ]
    for t in range(tables_count):
        lines.append(f"    - name: t{t}")
        lines.append("      fields:")
        lines.extend(f"        - {{name: f{f}, type: String, validation: {{minLength: 1}}}}" for f in range(8))
        lines.append("      indexes: [{fields: [f0, f1]}]")
    path.write_text("\n".join(lines) + "\n")
    return path


def _wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _assert_nothing_of_big(url: str) -> None:
    assert not any("ext_big" in t for t in tables(url))
    assert [p["pluginId"] for p in run("status", "-d", url, "-o", "json").items()] == ["seed"]


def _seed(url: str, directory: Path) -> None:
    """Create the registry (reads never do), so the next transaction the tests see is the migration's."""
    seed = directory / "seed.yaml"
    seed.write_text(
        "apiVersion: extschema.io/v1alpha1\nkind: ExtensionSchema\nmetadata: {name: seed}\n"
        "spec: {pluginId: seed, version: 1.0.0, tables: [{name: t, fields: [{name: a, type: String}]}]}\n"
    )
    assert run("apply", str(seed), "-d", url).exit_code == 0


@pytest.mark.postgres
def test_kill_9_mid_migration_leaves_nothing_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    spec = _big_schema(tmp_path / "big.yaml")
    _seed(pg_url, tmp_path)
    process = _cli("apply", str(spec), "-d", pg_url, cwd=tmp_path, capture=False)
    with psycopg.connect(pg_url, autocommit=True) as watcher:

        def migrating() -> bool:
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'active' AND query ILIKE 'CREATE%'"
            ).fetchone()
            return bool(row and row[0])

        _wait_for(migrating, 60, "the migration to start creating tables")
        time.sleep(0.3)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        # The server notices the connection is gone at the next statement and rolls back: the lock is
        # free at once (a correctness bound, not a benchmark: sent as one batch it took 4-19 s).
        _wait_for(
            lambda: not watcher.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0],  # type: ignore[index]
            1.5,
            "the advisory lock to be released",
        )
        _wait_for(lambda: not migrating(), 3, "the server to end the killed session")
    _assert_nothing_of_big(pg_url)
    outcome = run("apply", str(spec), "-d", pg_url)
    assert outcome.exit_code == 0, outcome.stderr
    assert sum(1 for t in tables(pg_url) if t.startswith("ext_big.")) == 1500


def test_kill_9_mid_migration_leaves_nothing_on_sqlite(sqlite_url: str, tmp_path: Path) -> None:
    spec = _big_schema(tmp_path / "big.yaml")
    _seed(sqlite_url, tmp_path)
    journal = Path(sqlite_url.removeprefix("sqlite:///") + "-journal")
    process = _cli("apply", str(spec), "-d", sqlite_url, cwd=tmp_path, capture=False)
    _wait_for(journal.exists, 60, "the migration transaction to begin")
    time.sleep(0.2)
    assert process.poll() is None, "the migration finished before it could be killed; make it larger"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert journal.exists()  # a hot journal: SQLite rolls it back on the next open
    _assert_nothing_of_big(sqlite_url)
    outcome = run("apply", str(spec), "-d", sqlite_url)
    assert outcome.exit_code == 0, outcome.stderr
    assert sum(1 for t in tables(sqlite_url) if t.startswith("ext_big__")) == 1500


def test_three_concurrent_applies_execute_once(db_url: str, tmp_path: Path) -> None:
    load_core(db_url)
    processes = [_cli("apply", str(EXAMPLES / "custom-reports.yaml"), "-d", db_url, cwd=tmp_path) for _ in range(3)]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], outputs
    assert sum("migration 0001 executed" in out for out, _ in outputs) == 1
    assert sum("unchanged" in out for out, _ in outputs) == 2
    history = run("history", "-d", db_url, "-o", "json").items()
    assert [(m["pluginId"], m["status"]) for m in history] == [("customreports", "executed")]
