"""`extschema rollback` goes through the approval gate like `apply` (issue 8: "no row is lost unless
someone approved exactly that loss"): a rollback that would drop a column with values or a table with
rows is refused (ES307, with the counts and the hash) unless `--approve HASH` names exactly that
rollback; what it drops is backed up, listed and restorable; on SQLite a rollback whose recorded SQL
rebuilds a table refuses (ES301) when the table has a column or trigger added by hand."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from extschema import planning, reconcile
from extschema.engine import Engine, StalePlan
from extschema.planning import safety
from tests.helpers import approved_rollback, execute, ext_table, run, tables, write_schema
from tests.test_backups import ROWS, V1, _fill
from tests.test_review_evolution import _numbers

#: V1 plus a field on order and a new table: rolling it back drops both.
V2 = (
    V1.replace("1.0.0", "2.0.0")
    .replace(
        "      - {name: note, type: Text}\n", "      - {name: note, type: Text}\n      - {name: extra, type: Text}\n"
    )
    .replace("relationships:", "  - name: tag\n    fields: [{name: label, type: String}]\nrelationships:")
)
TAGS = 7


def _apply_both(url: str, tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for name, body in (("v1", V1), ("v2", V2)):
        (tmp_path / name).mkdir()
        paths[name] = write_schema(tmp_path / name, "shop", body)
        outcome = run("apply", str(paths[name]), "-d", url)
        assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
        if name == "v1":
            _fill(url)
    return paths


def _written(url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Write into what version 2 added: order.extra for every order, TAGS rows of tag; read them back."""
    order, tag = ext_table(url, "shop", "order"), ext_table(url, "shop", "tag")
    execute(url, f"UPDATE {order} SET extra = 'x' || id")
    for i in range(TAGS):
        execute(url, f"INSERT INTO {tag} (label) VALUES (:l)", {"l": f"tag {i}"})
    return _state(url)


def _state(url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    order, tag = ext_table(url, "shop", "order"), ext_table(url, "shop", "tag")
    extras = [tuple(r) for r in execute(url, f"SELECT id, extra FROM {order} ORDER BY id")]
    return extras, [tuple(r) for r in execute(url, f"SELECT id, label FROM {tag} ORDER BY id")]


def _executed(url: str, plugin: str = "shop") -> list[str]:
    history = run("history", plugin, "-d", url, "-o", "json").items()
    return [m["version"] for m in history if m["status"] == "executed"]


def test_a_rollback_that_drops_data_waits_for_an_approval_of_exactly_it(db_url: str, tmp_path: Path) -> None:
    """Before: `rollback shop` dropped order.extra (120 values) and table tag (7 rows) at once,
    without approval and without a backup."""
    paths = _apply_both(db_url, tmp_path)
    written = _written(db_url)

    refused = run("rollback", "shop", "-d", db_url)
    assert refused.exit_code == 1, refused.stdout + refused.stderr
    assert "ES307" in refused.stderr and f"{ROWS} values" in refused.stderr, refused.stderr
    assert f"{TAGS} rows" in refused.stderr and "--approve" in refused.stderr, refused.stderr
    as_json = run("rollback", "shop", "-d", db_url, "-o", "json")
    assert as_json.exit_code == 1
    (pending,) = as_json.items()
    assert pending["pluginId"] == "shop" and pending["destructive"] is True, pending
    counts = sorted((op["check"]["kind"], op["check"]["count"]) for op in pending["ops"] if op["check"])
    assert counts == [("rows_lost", TAGS), ("values_lost", ROWS)], pending["ops"]
    assert pending["hash"] in refused.stderr
    # The same loss, the same hash: applying version 1 again (a lower version) is this very plan.
    lower = run("plan", str(paths["v1"]), "-d", db_url, "-o", "json")
    assert lower.exit_code == 0 and lower.item()["hash"] == pending["hash"], lower.stdout + lower.stderr
    stale = run("rollback", "shop", "--approve", "0" * 64, "-d", db_url)
    assert stale.exit_code == 1 and "ES308" in stale.stderr, stale.stdout + stale.stderr
    assert _state(db_url) == written and _executed(db_url) == ["1.0.0", "2.0.0"]

    approved = run("rollback", "shop", "--approve", pending["hash"], "-d", db_url)
    assert approved.exit_code == 0, approved.stdout + approved.stderr
    assert _executed(db_url) == ["1.0.0"]
    listed = run("backups", "shop", "-d", db_url, "-o", "json").items()
    assert sorted((b["sourceTable"], b["sourceColumn"], b["rows"]) for b in listed) == [
        ("order", "extra", ROWS),
        ("tag", None, TAGS),
    ]
    # Version 2 again, then its backup brings every value and row back.
    again = run("apply", str(paths["v2"]), "-d", db_url)
    assert again.exit_code == 0, again.stdout + again.stderr
    restored = run("restore", listed[0]["migrationId"], "-d", db_url)
    assert restored.exit_code == 0, restored.stdout + restored.stderr
    assert _state(db_url) == written


def test_a_rollback_that_loses_nothing_needs_no_approval(db_url: str, tmp_path: Path) -> None:
    _apply_both(db_url, tmp_path)  # order.extra and tag stay empty
    rolled = run("rollback", "shop", "-d", db_url)
    assert rolled.exit_code == 0, rolled.stdout + rolled.stderr
    assert _executed(db_url) == ["1.0.0"]


def test_rolling_back_the_first_migration_with_rows_needs_approval(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "v1").mkdir()
    assert run("apply", str(write_schema(tmp_path / "v1", "shop", V1)), "-d", db_url).exit_code == 0
    _fill(db_url)
    refused = run("rollback", "shop", "-d", db_url, "-o", "json")
    assert refused.exit_code == 1, refused.stdout + refused.stderr
    (pending,) = refused.items()
    assert run("rollback", "shop", "--approve", pending["hash"], "-d", db_url).exit_code == 0
    listed = run("backups", "-d", db_url, "-o", "json").items()
    assert sorted((b["sourceTable"], b["rows"]) for b in listed) == [("customer", 2), ("order", ROWS)]


def test_sqlite_rollback_never_rebuilds_away_a_column_added_by_hand(db_url: str, tmp_path: Path) -> None:
    """Before: on SQLite the recorded rollback SQL rebuilt order from the spec recorded at apply time,
    dropping the column a DBA added since, values and all. PostgreSQL alters in place."""
    v1 = _numbers("1.0.0", "      - {name: title, type: String, validation: {maxLength: 50}}")
    v2 = v1.replace("1.0.0", "1.1.0").replace("maxLength: 50", "maxLength: 80")
    for name, body in (("v1", v1), ("v2", v2)):
        (tmp_path / name).mkdir()
        assert run("apply", str(write_schema(tmp_path / name, "shop", body)), "-d", db_url).exit_code == 0
    table = ext_table(db_url, "shop", "order")
    execute(db_url, f"ALTER TABLE {table} ADD COLUMN dba_note TEXT")
    execute(db_url, f"INSERT INTO {table} (title, dba_note) VALUES ('a', 'keep me')")
    outcome = run("rollback", "shop", "-d", db_url)
    if db_url.startswith("sqlite"):
        assert outcome.exit_code == 1, outcome.stdout + outcome.stderr
        assert "ES301" in outcome.stderr and "dba_note" in outcome.stderr, outcome.stderr
        assert _executed(db_url) == ["1.0.0", "1.1.0"]
    else:
        assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert [tuple(r) for r in execute(db_url, f"SELECT title, dba_note FROM {table}")] == [("a", "keep me")]


def test_a_rollback_the_planner_cannot_plan_directly_is_reviewed_as_the_reverse_of_its_migration(
    db_url: str, tmp_path: Path
) -> None:
    """Going back to a required field without a default cannot be planned directly (ES302); the
    rollback is reviewed as the reverse of the migration that dropped it (re-adding it from its
    backup: nothing lost, no approval) and every value comes back."""
    v1 = _numbers("1.0.0", "      - {name: title, type: String}\n      - {name: code, type: String, required: true}")
    v2 = _numbers("2.0.0", "      - {name: title, type: String}")
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    assert run("apply", str(write_schema(tmp_path / "v1", "shop", v1)), "-d", db_url).exit_code == 0
    table = ext_table(db_url, "shop", "order")
    for i in range(5):
        execute(db_url, f"INSERT INTO {table} (title, code) VALUES (:t, :c)", {"t": f"t{i}", "c": f"c{i}"})
    path = write_schema(tmp_path / "v2", "shop", v2)
    planned = run("plan", str(path), "-d", db_url, "-o", "json").item()
    assert run("apply", str(path), "-d", db_url, "--approve", planned["hash"]).exit_code == 0
    rolled = run("rollback", "shop", "-d", db_url)
    assert rolled.exit_code == 0, rolled.stdout + rolled.stderr
    assert [tuple(r) for r in execute(db_url, f"SELECT title, code FROM {table} ORDER BY id")] == [
        (f"t{i}", f"c{i}") for i in range(5)
    ]


def _registry(url: str, table: str) -> str:
    return table if url.startswith("sqlite") else f"extschema.{table}"


def test_a_rollback_refuses_while_the_latest_migration_is_not_finished(db_url: str, tmp_path: Path) -> None:
    """Before: with migration 0002's row stuck in `executing` (a crash, a hand edit), `rollback --approve`
    undid 0001 instead: on SQLite it dropped both tables, on PostgreSQL DROP SCHEMA failed (ES402)."""
    _apply_both(db_url, tmp_path)
    written = _written(db_url)
    migrations = _registry(db_url, "extension_migrations")
    execute(db_url, f"UPDATE {migrations} SET status = 'executing' WHERE plugin_id = 'shop' AND migration_id = '0002'")
    before = tables(db_url), run("history", "shop", "-d", db_url, "-o", "json").json()

    for outcome in (run("rollback", "shop", "-d", db_url), approved_rollback(db_url, "shop")):
        assert outcome.exit_code == 1, outcome.stdout + outcome.stderr
        shown = outcome.stdout + outcome.stderr
        assert "ES317" in shown and "0002" in shown and "executing" in shown, shown
        assert "ES402" not in shown and "ES307" not in shown, shown
    assert (tables(db_url), run("history", "shop", "-d", db_url, "-o", "json").json()) == before
    assert _state(db_url) == written

    # Resolved as the message says (its changes are in place): the rollback undoes 0002 itself.
    execute(db_url, f"UPDATE {migrations} SET status = 'executed' WHERE plugin_id = 'shop' AND migration_id = '0002'")
    rolled = approved_rollback(db_url, "shop")
    assert rolled.exit_code == 0 and "rolled back migration 0002" in rolled.stdout, rolled.stdout + rolled.stderr
    assert _executed(db_url) == ["1.0.0"]


# --- a raw step's rollbackSql: reviewed, allowed, approved and backed up like what it is ------------------

RAW_V1 = """
pluginId: rtrb
version: 1.0.0
tables:
  - name: item
    fields: [{name: title, type: String}]
  - name: tag
    fields: [{name: label, type: String}]
"""
#: 2.0.0 adds a step whose rollbackSql deletes every row of item, also rows written after the step ran.
RAW_V2 = (
    RAW_V1.replace("1.0.0", "2.0.0")
    + """migrations:
  - id: s1
    sql: UPDATE ext_rtrb.item SET title = upper(title)
    rollbackSql: DELETE FROM ext_rtrb.item
"""
)


def _items(url: str) -> list[tuple[object, ...]]:
    return [tuple(r) for r in execute(url, f"SELECT id, title FROM {ext_table(url, 'rtrb', 'item')} ORDER BY id")]


def _raw_applied(url: str, tmp_path: Path) -> tuple[dict[str, Path], list[tuple[object, ...]]]:
    paths = {}
    for name, body in (("v1", RAW_V1), ("v2", RAW_V2)):
        (tmp_path / name).mkdir()
        paths[name] = write_schema(tmp_path / name, "rtrb", body)
    assert run("apply", str(paths["v1"]), "-d", url).exit_code == 0
    item = ext_table(url, "rtrb", "item")
    for title in ("a", "b", "c"):
        execute(url, f"INSERT INTO {item} (title) VALUES (:t)", {"t": title})
    planned = run("plan", str(paths["v2"]), "-d", url, "--allow-raw-sql", "-o", "json").item()
    applied = run("apply", str(paths["v2"]), "-d", url, "--allow-raw-sql", "--approve", planned["hash"])
    assert applied.exit_code == 0, applied.stdout + applied.stderr
    for title in ("written later", "and more"):  # after the step ran: its rollbackSql deletes them too
        execute(url, f"INSERT INTO {item} (title) VALUES (:t)", {"t": title})
    return paths, _items(url)


def test_a_raw_rollback_sql_needs_the_allow_flag_and_an_approval_of_exactly_it(db_url: str, tmp_path: Path) -> None:
    """Before: `rollback rtrb` ran `DELETE FROM ext_rtrb.item` at once (exit 0): no approval, no count, no
    backup, and no --allow-raw-sql, reviewing a plan without the step."""
    paths, items = _raw_applied(db_url, tmp_path)
    assert len(items) == 5

    refused = run("rollback", "rtrb", "-d", db_url)
    assert refused.exit_code == 1, refused.stdout + refused.stderr
    assert "ES313" in refused.stderr and "s1" in refused.stderr and "--allow-raw-sql" in refused.stderr
    assert _items(db_url) == items

    waiting = run("rollback", "rtrb", "-d", db_url, "--allow-raw-sql")
    assert waiting.exit_code == 1, waiting.stdout + waiting.stderr
    assert "ES307" in waiting.stderr and "s1" in waiting.stderr and "5 rows" in waiting.stderr, waiting.stderr
    as_json = run("rollback", "rtrb", "-d", db_url, "--allow-raw-sql", "-o", "json")
    (pending,) = as_json.items()
    assert pending["destructive"] is True and pending["class"] == "destructive", pending
    (raw,) = [op for op in pending["ops"] if op["kind"] == "run_sql"]
    assert raw["class"] == "destructive" and raw["check"] == {
        "kind": "rows_lost",
        "table": "item",
        "column": None,
        "count": 5,
    }, raw
    # Not the lower version's plan: that runs no rollbackSql, and an approval of it approves no DELETE.
    lower = run("plan", str(paths["v1"]), "-d", db_url, "-o", "json").item()
    assert lower["hash"] != pending["hash"]
    stale = run("rollback", "rtrb", "-d", db_url, "--allow-raw-sql", "--approve", lower["hash"])
    assert stale.exit_code == 1 and "ES308" in stale.stderr, stale.stdout + stale.stderr
    assert _items(db_url) == items

    approved = run("rollback", "rtrb", "-d", db_url, "--allow-raw-sql", "--approve", pending["hash"])
    assert approved.exit_code == 0, approved.stdout + approved.stderr
    assert _items(db_url) == [] and _executed(db_url, "rtrb") == ["1.0.0"]
    assert "backed up table item" in approved.stdout, approved.stdout
    listed = run("backups", "rtrb", "-d", db_url, "-o", "json").items()
    assert [(b["migrationId"], b["sourceTable"], b["sourceColumn"], b["rows"]) for b in listed] == [
        ("0002", "item", None, 5)
    ]
    # Every row the rollbackSql deleted comes back from that backup.
    restored = run("restore", "0002", "--plugin", "rtrb", "-d", db_url)
    assert restored.exit_code == 0, restored.stdout + restored.stderr
    assert _items(db_url) == items


def test_the_engine_runs_only_the_recorded_rollback_that_was_reviewed(db_url: str, tmp_path: Path) -> None:
    """The gate reviews the recorded rollback statements; under the lock the engine refuses others as stale."""
    _, items = _raw_applied(db_url, tmp_path)
    engine = Engine(db_url, allow_raw_sql=True)
    try:
        undo = reconcile.rollback_plan(engine, "rtrb")
        assert undo is not None and any("DELETE FROM" in s for s in undo.statements), undo
        with pytest.raises(StalePlan):
            engine.rollback("rtrb", dataclasses.replace(undo, statements=undo.statements[1:]))
    finally:
        engine.close()
    assert _items(db_url) == items and _executed(db_url, "rtrb") == ["1.0.0", "2.0.0"]


def test_a_rollback_sql_is_destructive_and_its_text_is_in_the_hash() -> None:
    step = planning.RunSql("rtrb", "s1", "DELETE FROM ext_rtrb.item WHERE id IN (SELECT id FROM ext_rtrb.tag)", "")
    [forward] = safety.classify_plan(planning.Plan("rtrb", (step,)))
    [undoing] = safety.classify_plan(planning.Plan("rtrb", (step,)), rollback=True)
    assert forward.op_class == "rewriting" and not forward.checks
    assert undoing.op_class == "destructive"
    assert [(c.kind, c.table) for c in undoing.checks] == [("rows_lost", "item"), ("rows_lost", "tag")]
    [empty] = safety.classify_plan(planning.Plan("rtrb", (dataclasses.replace(step, sql=" "),)), rollback=True)
    assert empty.op_class == "safe"
    other = dataclasses.replace(step, sql="DELETE FROM ext_rtrb.item WHERE id > 1")
    assert safety.plan_hash("base", planning.Plan("rtrb", (step,))) != safety.plan_hash(
        "base", planning.Plan("rtrb", (other,))
    )
