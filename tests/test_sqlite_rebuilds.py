"""SQLite table rebuilds: a plan rebuilds each table at most once, whatever the number of its steps that
SQLite cannot do in place (alembic's batch "move and copy"). Every row keeps its id and its values as
the steps map them, the backups are those each step takes, and the rollback (batched too) brings the
rows back. PostgreSQL runs the same plan in place, with the same hash."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml

from extschema import dialects, model, planning
from tests.helpers import Outcome, approved_rollback, execute, ext_table, run, write_schema

V1 = """
pluginId: kit
version: 1.0.0
enums:
  - {name: state, values: [open, skipped, done]}
tables:
  - name: item
    fields:
      - {name: title, type: String, required: true}
      - {name: state, type: Enum, enum: state, required: true, default: open}
      - {name: qty, type: Int}
      - {name: amount, type: Decimal, precision: 8, scale: 2, validation: {min: 0}}
      - {name: note, type: Text}
  - name: box
    fields:
      - {name: label, type: String}
      - {name: extra, type: Text}
{box_state}deletionPolicy: Drop
"""

#: Every kind of step on item: a field renamed (in place), an enum value renamed and one added, a
#: type changed, a field added (in place) and indexed, a field dropped.
V2 = """
pluginId: kit
version: 2.0.0
enums:
  - name: state
    values: [open, not_applicable, done, blocked]
    renamedValues: {skipped: not_applicable}
tables:
  - name: item
    fields:
      - {name: name, type: String, required: true, renamedFrom: title}
      - {name: state, type: Enum, enum: state, required: true, default: open}
      - {name: qty, type: BigInt}
      - {name: amount, type: Decimal, precision: 8, scale: 2, validation: {min: 0}}
      - {name: added, type: String}
    indexes:
      - {fields: [qty]}
  - name: box
    fields:
      - {name: label, type: String}
{box_extra}{box_state}deletionPolicy: Drop
"""

BOX_STATE = "      - {name: state, type: Enum, enum: state}\n"
BOX_EXTRA = "      - {name: extra, type: Text}\n"

ROWS = [
    ("valve", "done", 1, "12.50", "checked"),
    ("gauge", "skipped", 2_000_000_000, "0.05", None),
    ("pump", "open", None, None, "leaks"),
    ("gone", "skipped", 7, "1.00", "deleted before the change"),
]


def _write(directory: Path, body: str, *, box_state: bool, box_extra: bool = True) -> str:
    directory.mkdir(exist_ok=True)
    text = body.replace("{box_state}", BOX_STATE if box_state else "").replace(
        "{box_extra}", BOX_EXTRA if box_extra else ""
    )
    return str(write_schema(directory, "kit", text))


def _apply(url: str, path: str) -> Outcome:
    planned = run("plan", path, "-d", url, "-o", "json")
    assert planned.exit_code == 0, planned.stdout + planned.stderr
    outcome = run("apply", path, "-d", url, "--approve", planned.item()["hash"])
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    return outcome


def _fill(url: str, box_state: bool) -> None:
    item, box = ext_table(url, "kit", "item"), ext_table(url, "kit", "box")
    for title, state, qty, amount, note in ROWS:
        execute(url, f"INSERT INTO {item} (title, state, qty, amount, note) VALUES (:t, :s, :q, :a, :n)",
                {"t": title, "s": state, "q": qty, "a": amount, "n": note})  # fmt: skip
    execute(url, f"DELETE FROM {item} WHERE title = 'gone'")  # id 4 stays used
    state = ", state" if box_state else ""
    values = ", 'skipped'" if box_state else ""
    execute(url, f"INSERT INTO {box} (label, extra{state}) VALUES ('b1', 'x'{values})")


def _items(url: str, columns: str) -> list[tuple[object, ...]]:
    return [tuple(r) for r in execute(url, f"SELECT {columns} FROM {ext_table(url, 'kit', 'item')} ORDER BY id")]


def _rebuilds(sql: str, table: str) -> int:
    return len(re.findall(rf"CREATE TABLE ext_kit__{table}__rebuild \(", sql))


def _plans(url: str, path: str) -> tuple[str, str]:
    """The plan's SQL (text) and hash."""
    text = run("plan", path, "-d", url)
    assert text.exit_code == 0, text.stdout + text.stderr
    return text.stdout, str(run("plan", path, "-d", url, "-o", "json").item()["hash"])


def test_every_step_on_one_table_makes_one_rebuild_and_keeps_every_row(db_url: str, tmp_path: Path) -> None:
    v1 = _write(tmp_path / "v1", V1, box_state=False)
    v2 = _write(tmp_path / "v2", V2, box_state=False)
    _apply(db_url, v1)
    _fill(db_url, box_state=False)
    before = _items(db_url, "id, title, state, qty, amount, note")
    sql, _hash = _plans(db_url, v2)
    if db_url.startswith("sqlite"):
        assert _rebuilds(sql, "item") == 1, sql
        assert _rebuilds(sql, "box") == 0
        # The long Decimal CHECK is written once, in the one new table.
        assert sql.count("CONSTRAINT ext_kit__item_amount_check") == 1
        # Both backups are taken before the rebuild, from the rows as they are.
        backups = [sql.index(f"extschema_backup__kit__item__{c}__m0002") for c in ("qty", "note")]
        assert max(backups) < sql.index("CREATE TABLE ext_kit__item__rebuild (")
    else:
        assert "__rebuild" not in sql
    applied = _apply(db_url, v2)
    assert "backed up item.qty" in applied.stdout and "backed up item.note" in applied.stdout
    after = _items(db_url, "id, name, state, qty, amount, added")
    renamed = {"skipped": "not_applicable"}
    assert after == [(i, t, renamed.get(str(s), s), q, a, None) for i, t, s, q, a, _ in before]
    # Ids: the counter stays past the row deleted before the change.
    item = ext_table(db_url, "kit", "item")
    execute(db_url, f"INSERT INTO {item} (name, state) VALUES ('new', 'blocked')")
    assert _items(db_url, "id")[-1] == (5,)
    execute(db_url, f"DELETE FROM {item} WHERE id = 5")
    listed = run("backups", "kit", "-d", db_url, "-o", "json")
    assert listed.exit_code == 0, listed.stderr
    columns = {(b["sourceTable"], b["sourceColumn"]) for b in listed.items()}
    assert {("item", "qty"), ("item", "note")} <= columns, listed.items()
    # The rollback (one rebuild on SQLite too) brings back every value, under the old names.
    rolled = approved_rollback(db_url, "kit")
    assert rolled.exit_code == 0, rolled.stdout + rolled.stderr
    assert _items(db_url, "id, title, state, qty, amount, note") == before


def test_the_rollback_of_a_batched_plan_is_batched_too(sqlite_url: str, tmp_path: Path) -> None:
    v1 = _write(tmp_path / "v1", V1, box_state=False)
    v2 = _write(tmp_path / "v2", V2, box_state=False)
    _apply(sqlite_url, v1)
    _fill(sqlite_url, box_state=False)
    _apply(sqlite_url, v2)
    (rollback,) = execute(
        sqlite_url, "SELECT rollback_sql FROM extension_migrations WHERE plugin_id = 'kit' AND migration_id = '0002'"
    )
    assert _rebuilds(rollback[0], "item") == 1, rollback[0]
    # The column renamed back is renamed by the rebuild (no RENAME COLUMN before or after it).
    assert "RENAME COLUMN" not in rollback[0]


def test_a_dropped_column_of_a_batched_plan_is_restored(db_url: str, tmp_path: Path) -> None:
    v1 = _write(tmp_path / "v1", V1, box_state=False)
    _apply(db_url, v1)
    _fill(db_url, box_state=False)
    notes = _items(db_url, "id, note")
    _apply(db_url, _write(tmp_path / "v2", V2, box_state=False))
    # Version 3 has the note field again (empty); restore puts the backed-up values back by id.
    added = "      - {name: added"
    v3 = V2.replace("2.0.0", "3.0.0").replace(added, "      - {name: note, type: Text}\n" + added)
    _apply(db_url, _write(tmp_path / "v3", v3, box_state=False))
    restored = run("restore", "0002", "-p", "kit", "-d", db_url)
    assert restored.exit_code == 0, restored.stdout + restored.stderr
    assert _items(db_url, "id, note") == notes


def test_two_tables_changed_make_two_rebuilds(sqlite_url: str, tmp_path: Path) -> None:
    # The enum is in both tables: its renamed and added values rebuild both; box also loses a field.
    v1 = _write(tmp_path / "v1", V1, box_state=True)
    v2 = _write(tmp_path / "v2", V2, box_state=True, box_extra=False)
    _apply(sqlite_url, v1)
    _fill(sqlite_url, box_state=True)
    before = _items(sqlite_url, "id, title, state, qty, amount")
    sql, _hash = _plans(sqlite_url, v2)
    assert (_rebuilds(sql, "item"), _rebuilds(sql, "box")) == (1, 1), sql
    _apply(sqlite_url, v2)
    renamed = {"skipped": "not_applicable"}
    assert _items(sqlite_url, "id, name, state, qty, amount") == [
        (i, t, renamed.get(str(s), s), q, a) for i, t, s, q, a in before
    ]
    box = ext_table(sqlite_url, "kit", "box")
    assert [tuple(r) for r in execute(sqlite_url, f"SELECT id, label, state FROM {box}")] == [
        (1, "b1", "not_applicable")
    ]
    rolled = approved_rollback(sqlite_url, "kit")
    assert rolled.exit_code == 0, rolled.stdout + rolled.stderr
    (rollback,) = execute(
        sqlite_url, "SELECT rollback_sql FROM extension_migrations WHERE plugin_id = 'kit' AND migration_id = '0002'"
    )
    assert (_rebuilds(rollback[0], "item"), _rebuilds(rollback[0], "box")) == (1, 1)
    assert [tuple(r) for r in execute(sqlite_url, f"SELECT id, label, extra, state FROM {box}")] == [
        (1, "b1", "x", "skipped")
    ]


def test_a_column_mapped_by_an_earlier_step_is_backed_up_as_mapped(sqlite_url: str, tmp_path: Path) -> None:
    """A field dropped after its enum value was renamed, in one plan: the backup holds the renamed
    value (as the steps before the drop left it), and the rollback gives back the old one."""
    v1 = _write(tmp_path / "v1", V1, box_state=True)
    v2 = _write(tmp_path / "v2", V2.replace("{box_state}", ""), box_state=False)
    _apply(sqlite_url, v1)
    _fill(sqlite_url, box_state=True)
    sql, _hash = _plans(sqlite_url, v2)
    assert _rebuilds(sql, "box") == 1, sql
    _apply(sqlite_url, v2)
    backup = '"extschema_backup__kit__box__state__m0002"'
    assert [tuple(r) for r in execute(sqlite_url, f"SELECT id, state FROM {backup}")] == [(1, "not_applicable")]
    rolled = approved_rollback(sqlite_url, "kit")
    assert rolled.exit_code == 0, rolled.stdout + rolled.stderr
    box = ext_table(sqlite_url, "kit", "box")
    assert [tuple(r) for r in execute(sqlite_url, f"SELECT id, state FROM {box}")] == [(1, "skipped")]


# --- batched and step-by-step rebuilds leave the same database ---------------------------------

V2_MORE = """
pluginId: kit
version: 2.0.0
enums:
  - {name: state, values: [open, skipped, done, blocked]}
tables:
  - name: item
    fields:
      - {name: title, type: String, required: true}
      - {name: state, type: Enum, enum: state, required: true, default: done}
      - {name: qty, type: Float}
      - {name: amount, type: Decimal, precision: 10, scale: 3, validation: {min: 0}}
      - {name: note, type: Text, validation: {maxLength: 100}}
      - {name: code, type: String, required: true, default: none}
  - name: box
    fields:
      - {name: label, type: String}
      - {name: extra, type: Text}
deletionPolicy: Drop
"""


def _spec_of(path: str) -> model.ExtensionSchemaSpec:
    document = yaml.safe_load(Path(path).read_text())
    return model.parse_spec(document["spec"])


def _run_sql(path: Path, statements: list[str]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("BEGIN")
        for statement in statements:
            conn.execute(statement)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        conn.execute("COMMIT")
    finally:
        conn.close()


def _state(path: Path) -> dict[str, object]:
    """Every table's rows, and the schema of the plugin's tables and indexes (backups: their rows)."""
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        found: dict[str, object] = {n: conn.execute(f'SELECT * FROM "{n}" ORDER BY 1').fetchall() for n in names}
        # A table renamed into place has its name quoted by SQLite.
        found["schema"] = sorted(
            (kind, name, re.sub(r'^CREATE TABLE "(\w+)"', r"CREATE TABLE \1", sql))
            for kind, name, sql in conn.execute("SELECT type, name, sql FROM sqlite_master WHERE name LIKE 'ext_kit%'")
        )
        return found
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ((V1, False, True), (V2, False, True)),
        ((V1, True, True), (V2, True, False)),
        ((V1, True, True), (V2.replace("{box_state}", ""), False, True)),
        ((V1, False, True), (V2_MORE, False, True)),
    ],
    ids=["one-table", "two-tables", "mapped-backup", "types-defaults-rules"],
)
def test_one_rebuild_leaves_what_a_rebuild_per_step_leaves(
    old: tuple[str, bool, bool], new: tuple[str, bool, bool], tmp_path: Path
) -> None:
    """The batched plan and its rollback against the same steps rendered one by one (as before
    batching), on copies of one database with rows: the same rows, backups and schema."""
    dialect = dialects.for_backend("sqlite")
    first = _spec_of(_write(tmp_path / "v1", old[0], box_state=old[1], box_extra=old[2]))
    second = _spec_of(_write(tmp_path / "v2", new[0], box_state=new[1], box_extra=new[2]))
    database = tmp_path / "kit.db"
    _run_sql(database, list(dialect.render_plan(planning.plan(None, first, {}), "m0001").statements))
    _fill(f"sqlite:///{database}", box_state=old[1])
    plan = planning.plan(first, second, {})
    rendered = dialect.render_plan(plan, "m0002")
    one_by_one = [s for op in plan.ops for s in dialect.render_ops([op], "m0002")]
    undone_one_by_one = [s for op in reversed(plan.ops) for s in dialect.undo(op, "m0002")]
    assert len(one_by_one) > len(rendered.statements)
    start = _state(database)
    batched, stepwise = tmp_path / "batched.db", tmp_path / "stepwise.db"
    shutil.copy(database, batched)
    shutil.copy(database, stepwise)
    _run_sql(batched, list(rendered.statements))
    _run_sql(stepwise, one_by_one)
    # The same rows and backups; the tables as version 2 creates them (step by step, a column added
    # or renamed in place after the last rebuild leaves SQLite's edited CREATE TABLE text instead).
    fresh = tmp_path / "fresh.db"
    _run_sql(fresh, list(dialect.render_plan(planning.plan(None, second, {}), "m0001").statements))
    applied, stepped = _state(batched), _state(stepwise)
    assert _rows(applied) == _rows(stepped)
    assert applied["schema"] == _state(fresh)["schema"]
    _run_sql(batched, list(rendered.rollback))
    _run_sql(stepwise, undone_one_by_one)
    restored, undone = _state(batched), _state(stepwise)
    assert _rows(restored) == _rows(undone)
    assert {k: v for k, v in restored.items() if "backup" not in k} == start


def _rows(state: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in state.items() if k != "schema"}
