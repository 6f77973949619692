"""Defects an adversarial re-check of issue 7's Part 1 found after the fixes, through the real CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import approved_delete, execute, ext_table, run, tables, write_schema
from tests.specs import NOTES

SHOP = """
pluginId: shop
version: 1.0.0
enums:
  - {name: state, values: [new, done]}
tables:
  - name: order
    fields:
      - {name: title, type: String}
      - {name: state, type: Enum, enum: state}
  - name: line
    fields: [{name: qty, type: Int}]
"""


def _drop_everything_by_hand(url: str) -> None:
    """What a DBA cleaning up by hand does: the plugin's whole namespace goes (on SQLite: every table)."""
    if url.startswith("sqlite"):
        for table in ("order", "line"):
            execute(url, f"DROP TABLE {ext_table(url, 'shop', table)}")
    else:
        execute(url, 'DROP SCHEMA "ext_shop" CASCADE')


def _drop_the_enum_by_hand(url: str) -> None:
    """DROP TYPE ... CASCADE also drops the columns using it (SQLite has no enum types: the column goes)."""
    if url.startswith("sqlite"):
        execute(url, f"ALTER TABLE {ext_table(url, 'shop', 'order')} DROP COLUMN state")
    else:
        execute(url, 'DROP TYPE "ext_shop"."state" CASCADE')


def _add_an_enum_column_by_hand(url: str) -> None:
    """A column of the plugin's enum type on a table whose spec has none: its backup must not keep the type."""
    kind = "TEXT" if url.startswith("sqlite") else '"ext_shop"."state"'
    execute(url, f"ALTER TABLE {ext_table(url, 'shop', 'line')} ADD COLUMN st {kind}")
    execute(url, f"INSERT INTO {ext_table(url, 'shop', 'line')} (qty, st) VALUES (1, 'done')")


@pytest.mark.parametrize(
    "by_hand",
    [_drop_everything_by_hand, _drop_the_enum_by_hand, _add_an_enum_column_by_hand],
    ids=["namespace", "enum", "added-enum-column"],
)
def test_delete_completes_when_the_plugins_namespace_or_enum_was_dropped_by_hand(
    db_url: str, tmp_path: Path, by_hand: Callable[[str], None]
) -> None:
    assert run("apply", str(write_schema(tmp_path, "shop", SHOP)), "-d", db_url).exit_code == 0
    by_hand(db_url)
    outcome = approved_delete(db_url, "shop")
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert run("status", "-d", db_url).stdout.strip() == "no plugins registered"
    assert not any("ext_shop" in t for t in tables(db_url))
    if not db_url.startswith("sqlite"):
        assert execute(db_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'ext_shop'") == [(0,)]
    if by_hand is _add_an_enum_column_by_hand:
        (backup,) = [t for t in tables(db_url) if "shop__line" in t]
        quoted = ".".join(f'"{part}"' for part in backup.split("."))
        assert execute(db_url, f"SELECT qty, st FROM {quoted}") == [(1, "done")]
    # The plugin can be installed again from scratch.
    assert run("apply", str(write_schema(tmp_path, "shop", SHOP)), "-d", db_url).exit_code == 0


@pytest.mark.parametrize(
    ("table", "column", "key"),
    [
        ("extension_schemas", "updated_at", "extension_schemas[plugin_id='notes']"),
        ("extension_migrations", "execution_start", "extension_migrations[plugin_id='notes', migration_id='0001']"),
    ],
)
def test_an_unreadable_timestamp_names_its_row(
    sqlite_url: str, tmp_path: Path, table: str, column: str, key: str
) -> None:
    """Only SQLite can hold a timestamp that is not one (PostgreSQL's types refuse it): the message still
    names the row and the repair, as for any other unreadable registry value."""
    assert run("apply", str(write_schema(tmp_path, "notes", NOTES)), "-d", sqlite_url).exit_code == 0
    execute(sqlite_url, f"UPDATE {table} SET {column} = 'garbage'")
    reader = "status" if table == "extension_schemas" else "history"
    outcome = run(reader, "-d", sqlite_url, "-o", "json")
    assert outcome.exit_code == 3
    (problem,) = outcome.json()["problems"]
    assert problem["code"] == "ES405" and problem["path"] == key, problem
    assert column in problem["message"] and "plugin_id = 'notes'" in problem["message"], problem
    assert "extschema repair notes" in problem["message"]


def _decimal_spec(number: str) -> str:
    return f"""
pluginId: money
version: 1.0.0
tables:
  - name: account
    fields:
      - {{name: amount, type: Decimal, precision: 30, scale: 20, default: {number}, validation: {{min: {number}}}}}
"""


def test_a_decimal_number_is_never_silently_rounded(db_url: str, tmp_path: Path) -> None:
    """YAML reads 0.12345678901234567891 as a float (0.12345678901234568): the default and the bound would
    change without a word. Such a number is refused where it is written; one a float keeps exactly works."""
    (tmp_path / "long").mkdir()
    outcome = run(
        "apply", str(write_schema(tmp_path / "long", "money", _decimal_spec("0.12345678901234567891"))), "-d", db_url
    )
    assert outcome.exit_code == 1, outcome
    assert "ES008" in outcome.stderr and "money.yaml:11:" in outcome.stderr and "0.12345678901234568" in outcome.stderr
    assert not any("money" in t for t in tables(db_url))
    assert (
        run("apply", str(write_schema(tmp_path, "money", _decimal_spec("0.1234567890123456"))), "-d", db_url).exit_code
        == 0
    )
    table = ext_table(db_url, "money", "account")
    execute(db_url, f"INSERT INTO {table} (amount) VALUES ('0.1234567890123456')")
    execute(db_url, f"INSERT INTO {table} DEFAULT VALUES")
    amounts = execute(db_url, f"SELECT CAST(amount AS TEXT) FROM {table}")
    assert {a.rstrip("0") for (a,) in amounts} == {"0.1234567890123456"}


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_database_variable_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty: str
) -> None:
    """``EXTSCHEMA_DATABASE_URL=$PROD_URL`` with PROD_URL unset is the same mistake as ``--database ""``:
    an apply must not go to a fresh local file and report success."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EXTSCHEMA_DATABASE_URL", empty)
    outcome = run("status", "-o", "json")
    assert outcome.exit_code == 2, outcome
    problem = outcome.json()["problems"][0]
    assert problem["code"] == "ES404" and "EXTSCHEMA_DATABASE_URL" in problem["message"], problem
    assert not (tmp_path / "extschema.db").exists()
    # --database still overrides the variable.
    assert run("status", "-d", f"sqlite:///{tmp_path / 'given.db'}").exit_code == 0


def test_reads_do_not_create_a_sqlite_file(tmp_path: Path) -> None:
    """``status -d sqlite:///typo.db`` must not leave an empty database behind (and then look like a real one):
    reads of a file that does not exist see an empty database; the first write creates it."""
    missing = tmp_path / "typo.db"
    url = f"sqlite:///{missing}"
    spec = write_schema(tmp_path, "notes", NOTES)
    for args in (["status"], ["history"], ["plan", str(spec)], ["conflicts", str(spec)], ["status", "-o", "json"]):
        outcome = run(*args, "-d", url)
        assert outcome.exit_code == 0, (args, outcome)
        assert not missing.exists(), args
    assert "no plugins registered" in run("status", "-d", url).stdout
    assert run("apply", str(spec), "-d", url).exit_code == 0
    assert missing.exists()
    assert [p["pluginId"] for p in run("status", "-d", url, "-o", "json").items()] == ["notes"]


def test_reapplying_after_delete_retain_adopts_not_a_database_error(db_url: str, tmp_path: Path) -> None:
    """``delete --retain`` leaves the tables without an owner; applying the plugin again would run into them
    (CREATE TABLE/SCHEMA fails): it adopts them instead (tests/test_adopt.py), creating nothing."""
    spec = str(write_schema(tmp_path, "notes", NOTES))
    assert run("apply", spec, "-d", db_url).exit_code == 0
    assert run("delete", "notes", "--retain", "-d", db_url).exit_code == 0
    before = tables(db_url)
    for command in ("plan", "conflicts"):
        outcome = run(command, spec, "-d", db_url, "-o", "json")
        assert outcome.exit_code == 0 and not outcome.json()["problems"], (command, outcome)
    assert run("apply", spec, "-d", db_url).exit_code == 0
    assert tables(db_url) == before
    assert [h["kind"] for h in run("history", "notes", "-d", db_url, "-o", "json").items()][-1] == "adopt"


def test_a_number_yaml_reads_as_text_gets_a_hint_that_works(tmp_path: Path) -> None:
    """YAML 1.1 reads 1e308 and 1.5e3 as text (it wants a point and a signed exponent): "write the number
    without quotes" sends the user in circles; the message shows the spelling YAML reads as a number."""
    spec = """
pluginId: nums
version: 1.0.0
tables:
  - name: t
    fields:
      - {name: a, type: Float, default: 1.5e3, validation: {max: 1e308}}
"""
    for path, written, hint in [
        ("spec.tables[0].fields[0].validation.max", "1e308", "1.0e+308"),
        ("spec.tables[0].fields[0].default", "1.5e3", "1.5e+3"),
    ]:
        outcome = run("validate", str(write_schema(tmp_path, "nums", spec)), "-o", "json")
        assert outcome.exit_code == 1
        messages = {p["path"]: p["message"] for p in outcome.json()["problems"]}
        assert hint in messages[path], messages
        spec = spec.replace(written, hint)
    assert run("validate", str(write_schema(tmp_path, "nums", spec))).exit_code == 0


def test_reapplying_over_a_namespace_left_without_tables_is_a_conflict(db_url: str, tmp_path: Path) -> None:
    """``delete --retain``, then a DBA drops the kept tables: on PostgreSQL the plugin's schema and enum type
    remain, and CREATE SCHEMA/TYPE would fail in the database. The check reports them (ES202) and changes
    nothing; on SQLite nothing is left (no namespaces, no types), so the plugin installs again."""
    spec = str(write_schema(tmp_path, "shop", SHOP))
    assert run("apply", spec, "-d", db_url).exit_code == 0
    assert run("delete", "shop", "--retain", "-d", db_url).exit_code == 0
    for table in ("order", "line"):
        execute(db_url, f"DROP TABLE {ext_table(db_url, 'shop', table)}")
    if db_url.startswith("sqlite"):
        assert run("apply", spec, "-d", db_url).exit_code == 0
        return
    for command in ("apply", "plan", "conflicts"):
        outcome = run(command, spec, "-d", db_url, "-o", "json")
        assert outcome.exit_code == 1, (command, outcome)
        (problem,) = outcome.json()["problems"]
        assert problem["code"] == "ES202", (command, problem)
        assert "schema ext_shop" in problem["message"] and "type ext_shop.state" in problem["message"], problem
    assert execute(db_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'ext_shop'") == [(1,)]


def test_a_namespace_made_by_hand_is_a_conflict(db_url: str, tmp_path: Path) -> None:
    """``CREATE SCHEMA ext_notes`` by hand (PostgreSQL): applying the plugin is ES202, not a database error.
    SQLite has no namespaces: a plugin's tables are the only objects that can be in its way."""
    spec = str(write_schema(tmp_path, "notes", NOTES))
    if db_url.startswith("sqlite"):
        execute(db_url, "CREATE TABLE unrelated (x integer)")
        assert run("apply", spec, "-d", db_url).exit_code == 0
        return
    execute(db_url, 'CREATE SCHEMA "ext_notes"')
    outcome = run("apply", spec, "-d", db_url, "-o", "json")
    assert outcome.exit_code == 1, outcome
    (problem,) = outcome.json()["problems"]
    assert problem["code"] == "ES202" and "schema ext_notes" in problem["message"], problem
