"""Drift: the database's actual plugin objects against the registered spec, on both databases (issue 8, item 8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from extschema import reconcile
from extschema.engine import Engine, StalePlan
from tests.helpers import EXAMPLES, execute, ext_table, load_core, run, tables, write_schema

#: Every field type, a required field, a unique field, a declared index, a unique constraint, a
#: many-to-one inside the plugin (FK column + its index) and a many-to-many (join table).
EVERYTHING = """
pluginId: kit
version: 1.0.0
enums:
  - {name: level, values: [low, high]}
tables:
  - name: box
    fields:
      - {name: label, type: String, required: true, validation: {maxLength: 80}}
      - {name: body, type: Text}
      - {name: count, type: Int, default: 0, required: true}
      - {name: big, type: BigInt}
      - {name: ratio, type: Float}
      - {name: done, type: Boolean}
      - {name: day, type: Date}
      - {name: at, type: DateTime}
      - {name: price, type: Decimal, precision: 10, scale: 2}
      - {name: extra, type: Json}
      - {name: ref, type: Uuid}
      - {name: level, type: Enum, enum: level, default: low}
      - {name: code, type: String, unique: true}
    indexes:
      - {fields: [level, label]}
    uniqueConstraints:
      - {fields: [label, day]}
  - name: item
    fields: [{name: name, type: String}]
  - name: tag
    fields: [{name: name, type: String}]
relationships:
  - {source: item, target: box, type: ManyToOne}
  - {source: item, target: tag, type: ManyToMany}
"""


def _apply(url: str, directory: Path) -> None:
    outcome = run("apply", str(write_schema(directory, "kit", EVERYTHING)), "-d", url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr


def _drift(url: str, *args: str) -> tuple[int, dict[str, object]]:
    """The exit code, and whether every plugin is in sync with the plugins as JSON lists them."""
    outcome = run("drift", *args, "-d", url, "-o", "json")
    plugins = outcome.items()
    return outcome.exit_code, {"inSync": all(p["inSync"] for p in plugins), "plugins": plugins}


def _objects(url: str) -> set[str]:
    _, found = _drift(url, "kit")
    plugins = found["plugins"]
    assert isinstance(plugins, list)
    return {f"{d['kind']} {d['object']}" for p in plugins for d in p["differences"]}


def test_a_freshly_applied_plugin_is_in_sync(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path)
    code, found = _drift(db_url)
    assert (code, found["inSync"]) == (0, True), found
    text = run("drift", "-d", db_url)
    assert text.exit_code == 0 and text.stdout.splitlines()[1].split()[:3] == ["kit", "in", "sync"]


def test_drift_names_a_column_added_by_hand_a_missing_index_and_a_dropped_table(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path)
    box = ext_table(db_url, "kit", "box")
    execute(db_url, f"INSERT INTO {box} (label, code) VALUES ('a', 'A1'), ('b', 'B2')")
    execute(db_url, f"ALTER TABLE {box} ADD COLUMN dba_note TEXT")
    index = "box_level_label_idx" if db_url.startswith("postgresql") else "ext_kit__box_level_label_idx"
    execute(db_url, f'DROP INDEX {"ext_kit." if db_url.startswith("postgresql") else ""}"{index}"')
    execute(db_url, f"DROP TABLE {ext_table(db_url, 'kit', 'item_tag')}")
    code, found = _drift(db_url, "kit")
    assert code == 1 and found["inSync"] is False
    assert _objects(db_url) == {"extra column box.dba_note", f"missing index {index}", "missing table item_tag"}
    text = run("drift", "kit", "-d", db_url)
    assert text.exit_code == 1
    assert "extra column box.dba_note" in text.stdout and f"missing index {index}" in text.stdout


def test_drift_names_changed_types_nullability_and_enum_values(db_url: str, tmp_path: Path) -> None:
    _apply(db_url, tmp_path)
    box = ext_table(db_url, "kit", "box")
    if db_url.startswith("postgresql"):
        execute(db_url, f"ALTER TABLE {box} ALTER COLUMN body TYPE VARCHAR(10)")
        execute(db_url, f"ALTER TABLE {box} ALTER COLUMN label DROP NOT NULL")
        execute(db_url, 'ALTER TYPE "ext_kit"."level" ADD VALUE \'mid\'')
        expected = {"changed column box.body", "changed column box.label", "changed enum level"}
    else:  # SQLite cannot alter a column: a table made by hand in the plugin's prefix
        execute(db_url, 'CREATE TABLE "ext_kit__scratch" (x INTEGER)')
        expected = {"extra table ext_kit__scratch"}
    assert _objects(db_url) == expected


def test_a_repair_planned_before_more_went_missing_is_stale_and_planned_again(db_url: str, tmp_path: Path) -> None:
    """The engine runs the repair plan it is given only while it is exactly what is missing under the lock."""
    _apply(db_url, tmp_path)
    engine = Engine(db_url)
    try:
        execute(db_url, f"DROP TABLE {ext_table(db_url, 'kit', 'item_tag')}")
        planned = reconcile.repair_plan(engine, "kit")
        assert [op.describe() for op in planned.plan.ops] == ["create table item_tag (3 columns)"]
        execute(db_url, f"DROP INDEX {ext_table(db_url, 'kit', 'box_level_label_idx')}")
        with pytest.raises(StalePlan):
            engine.repair_drift(planned)
        assert [r.kind for r in engine.history("kit")] == ["apply"]  # nothing ran
        done = reconcile.repair(engine, "kit")  # planned again: both come back, in one migration
        assert any("item_tag" in line for line in done) and any("level, label" in line for line in done), done
        assert reconcile.drift(engine, "kit")[0].in_sync
    finally:
        engine.close()


def test_repair_recreates_what_is_missing_in_one_recorded_migration_and_keeps_extras(
    db_url: str, tmp_path: Path
) -> None:
    _apply(db_url, tmp_path)
    box, item = ext_table(db_url, "kit", "box"), ext_table(db_url, "kit", "item")
    execute(db_url, f"INSERT INTO {box} (label, code) VALUES ('a', 'A1')")
    execute(db_url, f"ALTER TABLE {box} ADD COLUMN dba_note TEXT")
    execute(db_url, f"DROP TABLE {ext_table(db_url, 'kit', 'item_tag')}")
    execute(db_url, f"DROP TABLE {item}")
    engine = Engine(db_url)
    try:
        assert not reconcile.drift(engine, "kit")[0].in_sync
        done = reconcile.repair(engine, "kit")
        assert any("item_tag" in line for line in done) and any("table item " in line for line in done), done
        report = reconcile.drift(engine, "kit")[0]
        assert [str(d) for d in report.differences] == ["extra column box.dba_note"]
        assert reconcile.repair(engine, "kit") == []  # nothing missing any more: no migration
    finally:
        engine.close()
    assert execute(db_url, f"SELECT label FROM {box}") == [("a",)]
    history = run("history", "kit", "-d", db_url, "-o", "json").items()
    assert [m["kind"] for m in history] == ["apply", "repair"]
    assert any(t.endswith("item_tag") for t in tables(db_url))


def test_drift_of_an_unregistered_plugin_is_es306(db_url: str) -> None:
    outcome = run("drift", "nothing", "-d", db_url)
    assert outcome.exit_code == 1 and "ES306" in outcome.stderr
    assert run("drift", "-d", db_url).exit_code == 0  # no plugins: nothing drifts
    assert not any("extension_" in t for t in tables(db_url))  # and reading created nothing


@pytest.mark.postgres
def test_a_dropped_schema_is_missing_and_repaired(pg_url: str, tmp_path: Path) -> None:
    _apply(pg_url, tmp_path)
    execute(pg_url, 'DROP SCHEMA "ext_kit" CASCADE')
    assert {"missing schema ext_kit", "missing enum level", "missing table box"} <= _objects(pg_url)
    assert run("drift", "kit", "--repair", "-d", pg_url).exit_code == 0
    assert _objects(pg_url) == set()


def test_repair_of_a_column_sqlite_adds_by_rebuilding_keeps_the_columns_after_it(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A required field without default cannot be added in place on SQLite: the repair rebuilds the table.
    It rebuilt it from the columns before the missing one only, dropping those after it (and, with the
    preflight, refused them as made by hand)."""
    body = EVERYTHING.replace(
        "{name: name, type: String}]", "{name: sku, type: String, required: true}, {name: name, type: String}]"
    )
    outcome = run("apply", str(write_schema(tmp_path, "kit", body)), "-d", sqlite_url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    execute(sqlite_url, f"ALTER TABLE {ext_table(sqlite_url, 'kit', 'tag')} DROP COLUMN sku")
    assert _objects(sqlite_url) == {"missing column tag.sku"}
    outcome = run("drift", "kit", "--repair", "-d", sqlite_url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert _objects(sqlite_url) == set()


@pytest.mark.postgres
def test_repair_builds_a_missing_index_of_a_table_with_rows(pg_url: str, tmp_path: Path) -> None:
    """Repair printed "re-created: create index ..." and recorded an executed repair, but the build it
    moved after COMMIT (concurrent, the table has rows) never ran: the index stayed missing and every
    repair (each driftPolicy: Repair interval) recorded another. Now it runs the apply's after phase."""
    _apply(pg_url, tmp_path)
    box = ext_table(pg_url, "kit", "box")
    execute(pg_url, f"INSERT INTO {box} (label, code, level) VALUES ('a', 'A1', 'low'), ('b', 'B2', 'high')")
    execute(pg_url, 'DROP INDEX "ext_kit"."box_level_label_idx"')
    outcome = run("drift", "kit", "--repair", "-d", pg_url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert "create index on box (level, label)" in outcome.stdout
    valid = "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = :name"
    assert execute(pg_url, valid, {"name": "box_level_label_idx"}) == [(True,)]
    assert _objects(pg_url) == set()
    history = run("history", "kit", "-d", pg_url, "-o", "json").items()
    assert [(m["kind"], m["status"]) for m in history] == [
        ("apply", "executed"),
        ("repair", "executed"),
        ("finish", "executed"),
    ]
    again = run("drift", "kit", "--repair", "-d", pg_url)
    assert again.exit_code == 0 and "repaired" not in again.stdout, again.stdout
    assert len(run("history", "kit", "-d", pg_url, "-o", "json").items()) == 3


def test_every_example_with_core_references_is_in_sync_after_apply(db_url: str) -> None:
    load_core(db_url)
    examples = sorted(str(p) for p in EXAMPLES.glob("*.yaml"))
    outcome = run("apply", *examples, "-d", db_url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    found = run("drift", "-d", db_url, "-o", "json").items()
    assert all(p["inSync"] for p in found) and len(found) == len(examples), found
