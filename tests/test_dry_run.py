"""Every destructive command through one gate, with a preview: `delete` of a plugin waits for the hash of
what it drops; `--dry-run` on delete, rollback, restore, repair and drift --repair prints the SQL and the
data effect and changes nothing (the database, registry included, is the same before and after); a restore
copying nothing records nothing; `repair` says which of its two modes it runs."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.helpers import EXAMPLES, execute, ext_table, load_core, run, subprocess_env, tables, write_schema
from tests.specs import SHOP

SHOP_V2 = SHOP.replace("1.0.0", "2.0.0").replace(
    "      - {name: state, type: Enum, enum: state, required: true, default: new}",
    "      - {name: state, type: Enum, enum: state, required: true, default: new}\n      - {name: note, type: Text}",
)
SHOP_V3 = SHOP.replace("1.0.0", "3.0.0")


def _snapshot(url: str) -> Any:
    """The whole database: every table's definition and rows (plugin, backup and registry tables)."""
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if not Path(path).exists():
            return None
        conn = sqlite3.connect(path)
        try:
            return list(conn.iterdump())
        finally:
            conn.close()
    state: dict[str, Any] = {
        "schemas": sorted(r[0] for r in execute(url, "SELECT nspname FROM pg_namespace")),
        "types": sorted(map(tuple, execute(url, "SELECT typname, typnamespace::regnamespace::text FROM pg_type"))),
        "indexes": sorted(map(tuple, execute(url, "SELECT schemaname, indexname, indexdef FROM pg_indexes"))),
        "columns": sorted(
            map(
                tuple,
                execute(
                    url,
                    "SELECT table_schema, table_name, column_name, data_type, is_nullable, column_default "
                    "FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
                ),
            ),
            key=repr,
        ),
    }
    for table in sorted(tables(url)):
        schema, _, name = table.partition(".")
        state[table] = sorted(map(tuple, execute(url, f'SELECT * FROM "{schema}"."{name}"')), key=repr)
    return state


def _apply(url: str, directory: Path, body: str) -> None:
    directory.mkdir(exist_ok=True)
    path = str(write_schema(directory, "shop", body))
    outcome = run("apply", path, "-d", url)
    if outcome.exit_code == 1 and "ES307" in outcome.stderr:
        digest = run("plan", path, "-d", url, "-o", "json").item()["hash"]
        outcome = run("apply", path, "-d", url, "--approve", digest)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr


def _orders(url: str, *titles: str) -> None:
    for title in titles:
        execute(url, f"INSERT INTO {ext_table(url, 'shop', 'order')} (title) VALUES (:t)", {"t": title})


def _unchanged(url: str, *args: str) -> Any:
    """Run ``extschema ARGS`` (a dry run) and check it changed nothing at all; returns its outcome."""
    before = _snapshot(url)
    outcome = run(*args, "-d", url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert _snapshot(url) == before, args
    return outcome


# --- delete: the gate ----------------------------------------------------------------------------------


def test_delete_of_a_plugin_holding_rows_waits_for_the_hash_of_what_it_drops(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", SHOP)
    _orders(db_url, "a", "b", "c")
    before = _snapshot(db_url)
    refused = run("delete", "shop", "-d", db_url)
    assert refused.exit_code == 1 and "ES307" in refused.stderr, refused.stderr
    assert "drops 1 table(s) holding 3 row(s)" in refused.stderr and "drop table order (3 rows)" in refused.stderr
    waiting = run("delete", "shop", "-d", db_url, "-o", "json")
    assert (waiting.exit_code, waiting.json()["reason"]) == (1, "approval")
    (pending,) = waiting.items()
    (drop,) = [op for op in pending["ops"] if op["kind"] == "drop_table"]
    assert (drop["check"]["table"], drop["check"]["count"]) == ("order", 3)
    digest = pending["hash"]
    assert f"--approve {digest}" in refused.stderr
    stale = run("delete", "shop", "--approve", "0123456789abcdef", "-d", db_url)
    assert stale.exit_code == 1 and "ES308" in stale.stderr and digest in stale.stderr, stale.stderr
    assert _snapshot(db_url) == before  # refused: nothing changed

    deleted = run("delete", "shop", "--approve", digest, "-d", db_url)
    assert deleted.exit_code == 0, deleted.stderr
    assert "dropped table order (3 row(s))" in deleted.stdout, deleted.stdout
    assert "backed up table order to" in deleted.stdout
    assert not any("ext_shop" in t for t in tables(db_url))
    assert run("status", "-d", db_url, "-o", "json").items() == []


def test_delete_of_an_empty_plugin_is_gated_too_and_retain_is_not(db_url: str, tmp_path: Path) -> None:
    """As a forward plan dropping an empty column: dropping tables is destructive, whatever they hold now."""
    _apply(db_url, tmp_path / "v1", SHOP)
    refused = run("delete", "shop", "-d", db_url)
    assert refused.exit_code == 1 and "holding 0 row(s)" in refused.stderr, refused.stderr
    preview = _unchanged(db_url, "delete", "shop", "--retain", "--dry-run", "-o", "json").item()
    assert (preview["action"], preview["needsApproval"], preview["hash"], preview["sql"]) == (
        "unregister",
        False,
        None,
        [],
    )
    mistaken = run("delete", "shop", "--retain", "--approve", "0123456789abcdef", "-d", db_url)
    assert mistaken.exit_code == 1 and "ES308" in mistaken.stderr and "only unregistered" in mistaken.stderr
    retained = run("delete", "shop", "--retain", "-d", db_url)
    assert retained.exit_code == 0 and "retained" in retained.stdout, retained.stderr
    assert any("ext_shop" in t for t in tables(db_url))


def test_the_delete_hash_is_the_rest_apis(db_url: str, tmp_path: Path) -> None:
    """One gate: the CLI's and the REST API's delete review the same plan (``?approve=`` takes the same hash)."""
    from extschema import reconcile
    from extschema.engine import Engine

    _apply(db_url, tmp_path / "v1", SHOP)
    _orders(db_url, "a")
    digest = run("delete", "shop", "--dry-run", "-d", db_url, "-o", "json").item()["hash"]
    engine = Engine(reconcile.database_url(db_url))
    try:
        from extschema.api import manage

        try:
            manage.delete(engine, "shop", None, None)
            raise AssertionError("the API deleted without approval")
        except manage.ApprovalNeeded as error:
            assert [p["hash"] for p in error.pending] == [digest]
        assert manage.delete(engine, "shop", digest, None)["ok"] is True
    finally:
        engine.close()


def test_delete_is_refused_for_dependents_before_it_asks_for_approval(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", SHOP)
    (tmp_path / "lines").mkdir()
    lines = (
        "pluginId: lines\nversion: 1.0.0\ndependsOn: [shop]\ntables: [{name: line, fields: [{name: n, type: Int}]}]\n"
    )
    assert run("apply", str(write_schema(tmp_path / "lines", "lines", lines)), "-d", db_url).exit_code == 0
    for args in (("delete", "shop"), ("delete", "shop", "--dry-run")):
        outcome = run(*args, "-d", db_url)
        assert outcome.exit_code == 1 and "ES303" in outcome.stderr and "ES307" not in outcome.stderr, outcome


# --- dry runs ------------------------------------------------------------------------------------------


def test_delete_dry_run_prints_the_sql_tables_rows_and_backups(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", SHOP)
    _orders(db_url, "a", "b")
    text = _unchanged(db_url, "delete", "shop", "--dry-run").stdout
    assert "nothing was changed" in text and "drops table order (2 row(s))" in text, text
    assert "backs up table order to" in text and "DROP TABLE" in text and "needs approval" in text
    (preview,) = _unchanged(db_url, "delete", "shop", "--dry-run", "-o", "json").items()
    assert (preview["action"], preview["migration"], preview["needsApproval"]) == ("delete", "0002", True)
    assert any(s.startswith("DROP TABLE") for s in preview["sql"])
    assert preview["plan"]["hash"] == preview["hash"]
    # What the dry run showed is what runs.
    deleted = run("delete", "shop", "--approve", preview["hash"], "-d", db_url, "-o", "json").item()
    assert deleted["migration"] == preview["migration"]
    assert [line for line in deleted["changes"] if line.startswith("dropped table")] == [
        line.replace("drops", "dropped", 1) for line in preview["changes"] if line.startswith("drops table")
    ]


def test_rollback_dry_run_names_what_it_drops_puts_back_and_runs(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v2", SHOP_V2)
    _orders(db_url, "a", "b")
    execute(db_url, f"UPDATE {ext_table(db_url, 'shop', 'order')} SET note = 'kept'")
    _apply(db_url, tmp_path / "v3", SHOP_V3)  # drops order.note (backed up)
    text = _unchanged(db_url, "rollback", "shop", "--dry-run").stdout
    assert "rollback would run on migration 0002" in text, text
    assert "puts back order.note from" in text and "(2 row(s))" in text and "SQL:" in text, text
    (preview,) = _unchanged(db_url, "rollback", "shop", "--dry-run", "-o", "json").items()
    assert (preview["action"], preview["migration"], preview["needsApproval"]) == ("rollback", "0002", False)
    assert preview["sql"] and preview["hash"]

    rolled = run("rollback", "shop", "-d", db_url)
    assert rolled.exit_code == 0, rolled.stderr
    assert "put back order.note from" in rolled.stdout and "SQL run:" in rolled.stdout, rolled.stdout
    assert execute(db_url, f"SELECT note FROM {ext_table(db_url, 'shop', 'order')}") == [("kept",), ("kept",)]


def test_rollback_dry_run_says_when_it_needs_approval(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", SHOP)
    _apply(db_url, tmp_path / "v2", SHOP_V2)
    _orders(db_url, "a")
    execute(db_url, f"UPDATE {ext_table(db_url, 'shop', 'order')} SET note = 'x'")
    (preview,) = _unchanged(db_url, "rollback", "shop", "--dry-run", "-o", "json").items()
    assert preview["needsApproval"] is True
    assert "drop column order.note (1 values)" in preview["changes"], preview["changes"]
    assert run("rollback", "shop", "--approve", preview["hash"], "-d", db_url).exit_code == 0


def test_restore_dry_run_and_a_restore_copying_nothing_records_nothing(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", SHOP)
    _orders(db_url, "a", "b", "c")
    digest = run("delete", "shop", "--dry-run", "-d", db_url, "-o", "json").item()["hash"]
    deleted = run("delete", "shop", "--approve", digest, "-d", db_url, "-o", "json").item()["migration"]
    # Of a deleted plugin: the spec it applies again, then the rows it copies back.
    text = _unchanged(db_url, "restore", deleted, "--dry-run").stdout
    assert "applies version 1.0.0 again" in text and "restores 3 row(s) of table order" in text, text
    assert "CREATE TABLE" in text
    assert run("restore", deleted, "-d", db_url).exit_code == 0
    history = run("history", "shop", "-d", db_url, "-o", "json").items()
    assert [m["kind"] for m in history] == ["apply", "delete", "apply", "restore"]

    (preview,) = _unchanged(db_url, "restore", deleted, "--dry-run", "-o", "json").items()
    assert (preview["changesAnything"], preview["sql"]) == (False, [])
    before = _snapshot(db_url)
    again = run("restore", deleted, "-d", db_url)
    assert again.exit_code == 0 and "nothing to restore" in again.stdout, again.stdout
    assert "3 already restored" in again.stdout
    assert _snapshot(db_url) == before  # no migration recorded
    (result,) = run("restore", deleted, "-d", db_url, "-o", "json").items()
    assert (result["changed"], result["migration"]) == (False, None)


def test_restore_dry_run_into_a_registered_plugin_counts_what_it_copies(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v2", SHOP_V2)
    _orders(db_url, "a", "b")
    execute(db_url, f"UPDATE {ext_table(db_url, 'shop', 'order')} SET note = 'kept'")
    _apply(db_url, tmp_path / "v3", SHOP_V3)
    _apply(db_url, tmp_path / "v2again", SHOP_V2.replace("2.0.0", "4.0.0"))  # note is back, empty
    (preview,) = _unchanged(db_url, "restore", "0002", "--dry-run", "-o", "json").items()
    assert preview["changes"][1:] == ["restores 2 value(s) of order.note"], preview
    assert any(s.startswith("UPDATE") for s in preview["sql"])
    assert run("restore", "0002", "-d", db_url).exit_code == 0
    assert execute(db_url, f"SELECT note FROM {ext_table(db_url, 'shop', 'order')}") == [("kept",), ("kept",)]


def test_drift_repair_dry_run_prints_what_it_would_re_create(db_url: str, tmp_path: Path) -> None:
    indexed = SHOP.replace("tables:", "tables:", 1) + "    indexes: [{fields: [title]}]\n"
    _apply(db_url, tmp_path / "v1", indexed)
    index = next(
        name
        for (name,) in execute(
            db_url,
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE '%title%'"
            if db_url.startswith("sqlite")
            else "SELECT indexname FROM pg_indexes WHERE schemaname = 'ext_shop' AND indexname LIKE '%title%'",
        )
    )
    execute(db_url, f'DROP INDEX "{index}"' if db_url.startswith("sqlite") else f'DROP INDEX "ext_shop"."{index}"')
    text = _unchanged(db_url, "drift", "shop", "--repair", "--dry-run").stdout
    assert "re-creates: " in text and "CREATE" in text and "nothing was changed" in text, text
    assert run("drift", "shop", "--repair", "-d", db_url).exit_code == 0
    assert "in sync" in run("drift", "shop", "-d", db_url).stdout
    assert run("drift", "shop", "--dry-run", "-d", db_url).exit_code == 2  # --dry-run goes with --repair


# --- repair: two explicit modes ----------------------------------------------------------------------


def _registry(url: str) -> str:
    return "extension_migrations" if url.startswith("sqlite") else "extschema.extension_migrations"


def _sql_of(url: str, migration: str) -> tuple[str, str]:
    ((text, checksum),) = execute(
        url, f"SELECT migration_sql, checksum_sql FROM {_registry(url)} WHERE migration_id = :m", {"m": migration}
    )
    return str(text), str(checksum)


def test_repair_accept_edits_keeps_the_edit_and_rerender_undoes_it(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", SHOP)
    original, checksum = _sql_of(db_url, "0001")
    execute(db_url, f"UPDATE {_registry(db_url)} SET migration_sql = migration_sql || '-- reviewed by ops'")
    blocked = run("apply", str(write_schema(tmp_path, "shop", SHOP_V2)), "-d", db_url)
    assert "ES304" in blocked.stderr and "--accept-edits" in blocked.stderr and "--rerender" in blocked.stderr

    usage = run("repair", "shop", "-d", db_url)
    assert usage.exit_code == 2 and "--accept-edits" in usage.stderr and "--rerender" in usage.stderr
    text = _unchanged(db_url, "repair", "shop", "--accept-edits", "--dry-run").stdout
    assert "0001: would re-record the checksum of the SQL as edited" in text and "nothing was changed" in text
    _unchanged(db_url, "repair", "shop", "--rerender", "--dry-run")

    (accepted,) = run("repair", "shop", "--accept-edits", "-d", db_url, "-o", "json").items()
    assert (accepted["migrationId"], accepted["mode"], accepted["changed"]) == ("0001", "accept-edits", True)
    edited, recorded = _sql_of(db_url, "0001")
    assert edited == original + "-- reviewed by ops" and recorded != checksum  # the edit stays, verified
    assert [m["checksumOk"] for m in run("history", "shop", "-d", db_url, "-o", "json").items()] == [True]
    # Verified means checked: a later edit is a mismatch again.
    execute(db_url, f"UPDATE {_registry(db_url)} SET migration_sql = migration_sql || ' again'")
    assert [m["checksumOk"] for m in run("history", "shop", "-d", db_url, "-o", "json").items()] == [False]

    rerendered = run("repair", "shop", "--rerender", "-d", db_url)
    assert "0001: rendered migration_sql again from the stored statements" in rerendered.stdout, rerendered.stdout
    assert _sql_of(db_url, "0001") == (original, checksum)
    assert run("repair", "shop", "--rerender", "-d", db_url).stdout.strip() == "all checksums already match"
    _apply(db_url, tmp_path / "v2", SHOP_V2)


def test_the_demos_gated_delete_runs(db_url: str) -> None:
    """``make demo-cli``'s examples/gated_delete.py on the examples: preview, refusal, approval, restore."""
    load_core(db_url)
    assert run("apply", str(EXAMPLES), "-d", db_url).exit_code == 0
    before = execute(db_url, f"SELECT count(*) FROM {ext_table(db_url, 'customreports', 'report')}")
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "gated_delete.py"), db_url],
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for shown in ("needs approval: run it with --approve", "ES307", "dropped table report", "nothing to restore"):
        assert shown in done.stdout, (shown, done.stdout)
    assert execute(db_url, f"SELECT count(*) FROM {ext_table(db_url, 'customreports', 'report')}") == before


def _on_a_terminal(url: str, answer: str, *args: str) -> tuple[int, str]:
    """``extschema delete shop ARGS`` with a pseudo-terminal as stdin and stdout, typing *answer* at its prompt."""
    import os
    import pty
    import select

    leader, follower = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "extschema", "delete", "shop", "-d", url, *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=subprocess_env(),
    )
    os.close(follower)
    seen, answered = b"", False
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        if not ready:
            child.kill()
            raise AssertionError(f"no output from the prompt: {seen!r}")
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        if not answered and b"Type the hash" in seen:
            os.write(leader, answer.encode() + b"\n")
            answered = True
    os.close(leader)
    return child.wait(timeout=120), seen.decode(errors="replace")


def test_on_a_terminal_delete_shows_the_preview_and_asks_for_the_hash(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path / "v1", SHOP)
    _orders(db_url, "a")
    digest = run("delete", "shop", "--dry-run", "-d", db_url, "-o", "json").item()["hash"]
    code, shown = _on_a_terminal(db_url, "yes")
    assert code == 1 and "drops table order (1 row(s))" in shown and "aborted" in shown, shown
    assert any("ext_shop" in t for t in tables(db_url))
    code, shown = _on_a_terminal(db_url, digest)
    assert code == 0 and "dropped table order (1 row(s))" in shown, shown
    assert not any("ext_shop" in t for t in tables(db_url))


def test_the_operators_delete_is_the_declared_intent_and_not_gated(db_url: str, tmp_path: Path) -> None:
    """``deletionPolicy: Drop`` on a deleted resource drops (reconcile.delete without approvals: no gate)."""
    from extschema import reconcile
    from extschema.engine import Engine

    _apply(db_url, tmp_path / "v1", SHOP)
    _orders(db_url, "a")
    engine = Engine(reconcile.database_url(db_url))
    try:
        result = reconcile.delete(engine, "shop")
    finally:
        engine.close()
    assert result.changed and "dropped table order (1 row(s))" in result.description
    assert not any("ext_shop" in t for t in tables(db_url))
