"""Long and partial work is visible: each step as it runs with its time (text and JSON lines on
stderr), the after phase timed in apply, history and JSON, row counts on a terminal, lock waits
that name the blocking session, and a multi-spec apply that fails after committing some specs."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from extschema import reconcile
from extschema.cli.base import event_json
from extschema.controller import targets
from extschema.dialects import Blocker, PostgresDialect, SqliteDialect
from extschema.problems import ProblemError
from tests.helpers import REPO, approved_delete, execute, ext_table, run, subprocess_env, write_schema

V1 = """
pluginId: big
version: 1.0.0
tables:
  - name: t
    fields:
      - {name: n, type: Int}
      - {name: s, type: String}
"""
#: An index on a table holding rows: built concurrently after COMMIT on PostgreSQL.
V2 = V1.replace("1.0.0", "2.0.0") + "    indexes:\n      - {fields: [n]}\n"
#: Drops a column: backs up its values first (a step that copies rows).
V3 = V2.replace("2.0.0", "3.0.0").replace("      - {name: s, type: String}\n", "")


def _fill(url: str, rows: int) -> None:
    table = ext_table(url, "big", "t")
    values = ", ".join(f"({i}, 'x')" for i in range(rows))
    execute(url, f"INSERT INTO {table} (n, s) VALUES {values}")


def _schema(directory: Path, body: str) -> Path:
    directory.mkdir(exist_ok=True)
    return write_schema(directory, "big", body)


def _hash(path: Path, url: str) -> str:
    planned = run("plan", str(path), "-d", url, "-o", "json")
    assert planned.exit_code == 0, planned.stderr
    return str(planned.item()["hash"])


def test_apply_prints_each_step_as_it_runs_with_its_time(db_url: str, tmp_path: Path) -> None:
    path = write_schema(tmp_path, "big", V1)
    outcome = run("apply", str(path), "-d", db_url)
    assert outcome.exit_code == 0, outcome.stderr
    lines = outcome.stderr.splitlines()
    assert lines[0] == f"[1/1] big 1.0.0 ({path})"
    steps = [line for line in lines if line.startswith("  step ")]
    assert [s.rsplit(": ", 1)[0] for s in steps] == [
        "  step 1/2 create namespace for plugin big",
        "  step 2/2 create table t (3 columns)",
    ]
    assert all(s.endswith(" ms") for s in steps), steps
    assert "\x1b" not in outcome.stderr and "\r" not in outcome.stderr  # not a terminal: no live line


def test_delete_and_restore_print_their_steps_too(db_url: str, tmp_path: Path) -> None:
    assert run("apply", str(write_schema(tmp_path, "big", V1)), "-d", db_url).exit_code == 0
    _fill(db_url, 3)
    deleted = approved_delete(db_url, "big")
    assert deleted.exit_code == 0, deleted.stderr
    assert re.search(r"^  step 1/\d+ drop table t: [\d,]+ ms$", deleted.stderr, re.M), deleted.stderr
    restored = run("restore", "0002", "-d", db_url, "-o", "json")  # JSON: the steps as events on stderr
    assert restored.exit_code == 0, restored.stderr
    events = [json.loads(line) for line in restored.stderr.splitlines()]
    assert {"StepStarted", "StepFinished"} <= {e["event"] for e in events}, restored.stderr
    assert restored.items()[-1]["changed"] is True


def test_json_output_streams_events_on_stderr_and_keeps_one_envelope_on_stdout(db_url: str, tmp_path: Path) -> None:
    path = write_schema(tmp_path, "big", V1)
    outcome = run("apply", str(path), "-d", db_url, "-o", "json")
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.json()["kind"] == "AppliedList"
    events = [json.loads(line) for line in outcome.stderr.splitlines()]
    assert [e["event"] for e in events] == [
        "MigrationStarted",
        "StepStarted",
        "StepFinished",
        "StepStarted",
        "StepFinished",
        "MigrationFinished",
    ]
    finished = [e for e in events if e["event"] == "StepFinished"]
    assert [e["description"] for e in finished] == ["create namespace for plugin big", "create table t (3 columns)"]
    assert all(isinstance(e["durationMs"], int) and e["phase"] == "main" for e in finished)
    assert finished[1]["statements"] >= 1 and finished[1]["migrationId"] == "0001"
    assert events[-1]["migration"] == "0001" and events[-1]["changed"] is True


def test_the_after_phase_is_printed_timed_and_recorded(db_url: str, tmp_path: Path) -> None:
    assert run("apply", str(write_schema(tmp_path, "big", V1)), "-d", db_url).exit_code == 0
    _fill(db_url, 50)
    path = write_schema(tmp_path, "big", V2)
    outcome = run("apply", str(path), "-d", db_url, "-o", "json")
    assert outcome.exit_code == 0, outcome.stderr
    applied = outcome.item()
    events = [json.loads(line) for line in outcome.stderr.splitlines()]
    after_steps = [e for e in events if e["event"] == "StepFinished" and e["phase"] == "after"]
    history = {m["migrationId"]: m for m in run("history", "big", "-d", db_url, "-o", "json").items()}
    if db_url.startswith("sqlite"):  # the index is built in the migration's transaction
        assert applied["after"] is None and not after_steps and set(history) == {"0001", "0002"}
        return
    after = applied["after"]
    assert after["migration"] == "0003" and isinstance(after["durationMs"], int)
    assert after["changes"] == ['build index "t_n_idx" concurrently']
    assert [e["description"] for e in after_steps] == ['build index "t_n_idx" concurrently']
    finish = history["0003"]
    assert finish["kind"] == "finish" and finish["status"] == "executed"
    assert finish["durationMs"] == after["durationMs"] and finish["executionEnd"] is not None
    text = run("history", "big", "-d", db_url).stdout
    (line,) = [row for row in text.splitlines() if row.split()[1:3] == ["0003", "finish"]]
    assert f" {after['durationMs']:,} ms " in line, line  # a duration, where it was "-" before


def test_the_after_phase_shows_in_apply_text(pg_url: str, tmp_path: Path) -> None:
    assert run("apply", str(write_schema(tmp_path, "big", V1)), "-d", pg_url).exit_code == 0
    _fill(pg_url, 10)
    outcome = run("apply", str(write_schema(tmp_path, "big", V2)), "-d", pg_url)
    assert outcome.exit_code == 0, outcome.stderr
    assert "then, after COMMIT: migration 0003 (finish) in " in outcome.stdout
    assert '  - build index "t_n_idx" concurrently' in outcome.stdout
    assert '  after COMMIT: step 1/1 build index "t_n_idx" concurrently: ' in outcome.stderr


A = """
pluginId: aa
version: 1.0.0
tables:
  - name: t
    fields:
      - {name: x, type: String}
"""
#: Its raw SQL step breaks NOT NULL on both databases.
B = """
pluginId: bb
version: 1.0.0
dependsOn: [aa]
tables:
  - name: t
    fields:
      - {name: x, type: String}
      - {name: y, type: String, required: true}
migrations:
  - id: s1
    sql: "INSERT INTO ext_bb.t (x) VALUES ('a')"
    rollbackSql: "DELETE FROM ext_bb.t"
"""


@pytest.mark.parametrize("output", ["text", "json"])
def test_a_multi_spec_apply_that_fails_reports_what_it_committed_and_the_failing_step(
    db_url: str, tmp_path: Path, output: str
) -> None:
    a, b = write_schema(tmp_path, "aa", A), write_schema(tmp_path, "bb", B)
    refused = run("apply", str(a), str(b), "-d", db_url, "--allow-raw-sql", "-o", "json")
    assert refused.exit_code == 1 and refused.json()["kind"] == "Failure"  # nothing ran: it needs approval
    approve = ("--allow-raw-sql", "--approve", refused.items()[0]["hash"])
    outcome = run("apply", str(a), str(b), "-d", db_url, *approve, "-o", output)
    assert outcome.exit_code == 3
    if output == "text":
        assert outcome.stdout.splitlines()[0].startswith("aa: migration 0001 executed in ")
        assert "bb" not in outcome.stdout
        failed = f"{b}: spec.migrations[0]: ES402: step 3/3 (run SQL step s1) failed: "
        assert outcome.stderr.splitlines()[-1].startswith(failed), outcome.stderr
    else:
        envelope = outcome.json()
        assert envelope["kind"] == "AppliedList" and envelope["ok"] is False
        assert [(i["pluginId"], i["changed"], i["migration"]) for i in envelope["items"]] == [("aa", True, "0001")]
        (problem,) = envelope["problems"]
        assert problem["code"] == "ES402" and problem["path"] == "spec.migrations[0]" and problem["subject"] == "bb"
        assert problem["file"] == str(b) and problem["message"].startswith("step 3/3 (run SQL step s1) failed: ")
    status = {p["pluginId"]: p["status"] for p in run("status", "-d", db_url, "-o", "json").items()}
    assert status["aa"] == "active" and status.get("bb") != "active"


def test_a_single_failing_spec_is_still_a_failure(db_url: str, tmp_path: Path) -> None:
    b = write_schema(tmp_path, "bb", B.replace("dependsOn: [aa]\n", ""))
    refused = run("apply", str(b), "-d", db_url, "--allow-raw-sql", "-o", "json")
    outcome = run(
        "apply", str(b), "-d", db_url, "--allow-raw-sql", "--approve", refused.items()[0]["hash"], "-o", "json"
    )
    assert outcome.exit_code == 3 and outcome.json()["kind"] == "Failure"
    (problem,) = outcome.json()["problems"]
    assert problem["path"] == "spec.migrations[0]" and "(run SQL step s1) failed" in problem["message"]
    history = run("history", "bb", "-d", db_url, "-o", "json").items()
    assert history[-1]["status"] == "failed" and "(run SQL step s1) failed" in history[-1]["errorMessage"]


def _cli(*args: str, stderr: int | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "extschema", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if stderr is None else stderr,
        env=subprocess_env(),
    )


def _read_until(stream: int, needle: bytes, timeout: float = 60) -> bytes:
    """What *stream* (a file descriptor) says until *needle* appears (or it ends, or *timeout*)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(stream, 4096)
            except OSError:  # a pty's end
                break
            if not chunk:
                break
            seen += chunk
    return seen


@pytest.mark.postgres
def test_a_lock_wait_names_the_blocking_session_while_it_waits_and_when_it_gives_up(
    pg_url: str, tmp_path: Path
) -> None:
    assert run("apply", str(write_schema(tmp_path, "big", V1)), "-d", pg_url).exit_code == 0
    path = _schema(tmp_path / "v2", V1.replace("1.0.0", "1.1.0") + "      - {name: u, type: String}\n")
    with psycopg.connect(pg_url, application_name="holder-app") as holder:
        holder.execute('LOCK TABLE "ext_big"."t" IN ACCESS SHARE MODE')  # ADD COLUMN waits for it
        pid = holder.info.backend_pid
        child = _cli("apply", str(path), "-d", pg_url, "--lock-timeout", "500ms")
        assert child.stderr is not None
        said = _read_until(child.stderr.fileno(), b"holder-app").decode()
        assert f"waiting for a lock held by pid {pid} (application 'holder-app', idle in transaction for " in said
        _, rest = child.communicate(timeout=120)
        holder.rollback()
    assert child.returncode == 3
    final = rest.decode().strip().splitlines()[-1]
    assert "ES403" in final and f"pid {pid} (application 'holder-app'" in final
    assert final.endswith("try again later, or raise --lock-timeout)") and "lockTimeout" not in final


def test_a_sqlite_lock_wait_says_the_file_is_locked(sqlite_url: str, tmp_path: Path) -> None:
    assert run("apply", str(write_schema(tmp_path, "big", V1)), "-d", sqlite_url).exit_code == 0
    path = _schema(tmp_path / "v2", V2)
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        child = _cli("apply", str(path), "-d", sqlite_url)
        assert child.stderr is not None
        said = _read_until(child.stderr.fileno(), b"locked by another connection").decode()
    finally:
        holder.execute("COMMIT")
        holder.close()
    out, _ = child.communicate(timeout=120)
    assert "is locked by another connection (SQLite waits up to its busy timeout" in said
    assert child.returncode == 0 and b"big: migration 0002 executed" in out


def test_a_terminal_sees_the_rows_a_step_copies_and_its_line_updated(db_url: str, tmp_path: Path) -> None:
    assert run("apply", str(write_schema(tmp_path, "big", V2)), "-d", db_url).exit_code == 0
    _fill(db_url, 120)
    path = _schema(tmp_path / "v3", V3)
    approve = ("--approve", _hash(path, db_url))
    controller, terminal = pty.openpty()
    try:
        child = _cli("apply", str(path), "-d", db_url, *approve, stderr=terminal)
        os.close(terminal)
        shown = _read_until(controller, b"\x00never", timeout=120).decode()
        child.communicate(timeout=60)
    finally:
        os.close(controller)
    assert child.returncode == 0, shown
    (line,) = [line for line in shown.split("\n") if "drop column t.s" in line]  # a pty ends lines with \r\n
    # Shown while it ran with the rows it copies, then rewritten in place with its time.
    assert "drop column t.s, 120 rows ...\r\x1b[K" in line and line.rstrip().endswith(" ms")


def test_output_that_is_not_a_terminal_has_no_row_counts_or_control_characters(db_url: str, tmp_path: Path) -> None:
    assert run("apply", str(write_schema(tmp_path, "big", V2)), "-d", db_url).exit_code == 0
    _fill(db_url, 5)
    path = _schema(tmp_path / "v3", V3)
    outcome = run("apply", str(path), "-d", db_url, "--approve", _hash(path, db_url))
    assert outcome.exit_code == 0, outcome.stderr
    (line,) = [line for line in outcome.stderr.splitlines() if "drop column t.s" in line]
    assert "rows" not in line and "\r" not in outcome.stderr and "\x1b" not in outcome.stderr


@pytest.mark.postgres
def test_the_operator_names_its_own_lock_timeout_setting(pg_url: str, tmp_path: Path) -> None:
    assert run("apply", str(write_schema(tmp_path, "big", V1)), "-d", pg_url).exit_code == 0
    path = _schema(tmp_path / "v2", V1.replace("1.0.0", "1.1.0") + "      - {name: u, type: String}\n")
    engines = targets.Engines()
    engine = engines.get(targets.Target("ns/db", "db", pg_url, lock_timeout_ms=200))
    try:
        with psycopg.connect(pg_url, application_name="holder-app") as holder:
            holder.execute('LOCK TABLE "ext_big"."t" IN ACCESS SHARE MODE')
            with pytest.raises(ProblemError) as refused:
                reconcile.reconcile(engine, reconcile.load([str(path)]), lambda event: None)
            holder.rollback()
    finally:
        engines.close()
    (problem,) = refused.value.problems
    assert problem.code == "ES403" and problem.message.endswith("or raise spec.lockTimeout of the DatabaseTarget)")
    assert "--lock-timeout" not in problem.message


def test_the_documented_events_have_the_keys_apply_prints(db_url: str, tmp_path: Path) -> None:
    """docs/json-output.md's event lines list exactly the keys of the events apply prints."""
    text = (REPO / "docs" / "json-output.md").read_text()
    (block,) = re.findall(r"```jsonl\n(.*?)```", text, re.DOTALL)
    documented = {e["event"]: set(e) for e in map(json.loads, block.splitlines())}
    a, b = write_schema(tmp_path, "aa", A), write_schema(tmp_path, "bb", B)
    refused = run("apply", str(a), str(b), "-d", db_url, "--allow-raw-sql", "-o", "json")
    approve = ("--allow-raw-sql", "--approve", refused.items()[0]["hash"])
    printed = run("apply", str(a), str(b), "-d", db_url, *approve, "-o", "json").stderr.splitlines()
    seen = {e["event"]: set(e) for e in map(json.loads, printed)}
    assert set(seen) == set(documented) - {"LockWaiting"}  # a lock wait: see the lock tests above
    assert all(seen[name] == documented[name] for name in seen)
    waiting = reconcile.LockWaiting("p", 1.0, (Blocker(1, "a", "idle", 1.0, "q"),), "m")
    assert set(event_json(waiting)) == documented["LockWaiting"]
    assert set(event_json(waiting)["blockers"][0]) == set(documented_blocker(block))


def documented_blocker(block: str) -> dict[str, object]:
    (line,) = [json.loads(line) for line in block.splitlines() if '"LockWaiting"' in line]
    blocker: dict[str, object] = line["blockers"][0]
    return blocker


def test_sqlite_says_its_file_was_locked_for_the_whole_busy_timeout() -> None:
    """SQLite's own wait (the busy timeout, 30 s: too long for a test run) ends in "database is locked":
    ES403 then says which file and why, not "temporary database error"."""
    dialect = SqliteDialect()
    url = sa.engine.make_url("sqlite:///data/app.db")
    said = dialect.locked(sqlite3.OperationalError("database is locked"), url)
    assert said is not None and said.startswith("the database file data/app.db is locked by another connection")
    assert "busy timeout (30 s)" in said
    assert dialect.locked(sqlite3.OperationalError("no such table: x"), url) is None
    assert PostgresDialect().locked(sqlite3.OperationalError("database is locked"), url) is None
