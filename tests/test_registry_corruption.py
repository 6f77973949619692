"""A registry edited into an unreadable shape: a coded message naming the row, never a traceback (issue 7, defect 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import Outcome, execute, run, write_schema

V1 = """
pluginId: notes
version: 1.0.0
tables:
  - name: note
    fields: [{name: title, type: String}]
"""
V2 = V1.replace("1.0.0", "1.1.0").replace(
    "{name: title, type: String}", "{name: title, type: String}, {name: body, type: Text}"
)

#: (name, table, column, value on SQLite, value on PostgreSQL — jsonb only holds valid JSON)
CORRUPTIONS = [
    ("spec-not-json", "extension_schemas", "schema_definition", "{broken", '"not a spec"'),
    ("spec-wrong-type", "extension_schemas", "schema_definition", '{"pluginId": 5}', '{"pluginId": 5}'),
    ("tables-null", "extension_schemas", "tables", "null", "null"),
    ("statements-not-a-list", "extension_migrations", "statements", "5", "5"),
    ("statements-not-json", "extension_migrations", "statements", "[", '{"a": 1}'),
    ("description-null", "extension_migrations", "description", "null", "null"),
    ("rollback-wrong-type", "extension_migrations", "rollback_statements", "[1, 2]", "[1, 2]"),
]


def _corrupt(url: str, table: str, column: str, sqlite_value: str, pg_value: str) -> None:
    if url.startswith("sqlite"):
        execute(url, f"UPDATE {table} SET {column} = :v WHERE plugin_id = 'notes'", {"v": sqlite_value})
    else:
        execute(
            url, f"UPDATE extschema.{table} SET {column} = CAST(:v AS jsonb) WHERE plugin_id = 'notes'", {"v": pg_value}
        )


def _commands(url: str, directory: Path) -> dict[str, Outcome]:
    (directory / "v2").mkdir()
    v2 = write_schema(directory / "v2", "notes", V2)
    return {
        "status": run("status", "-d", url),
        "history": run("history", "-d", url),
        "apply": run("apply", str(v2), "-d", url),
        "rollback": run("rollback", "notes", "-d", url),
        "delete": run("delete", "notes", "-d", url),
    }


@pytest.mark.parametrize(
    ("name", "table", "column", "sqlite_value", "pg_value"), CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS]
)
def test_corrupted_registry_rows_are_reported_not_raised(
    db_url: str, tmp_path: Path, name: str, table: str, column: str, sqlite_value: str, pg_value: str
) -> None:
    (tmp_path / "v1").mkdir()
    assert run("apply", str(write_schema(tmp_path / "v1", "notes", V1)), "-d", db_url).exit_code == 0
    _corrupt(db_url, table, column, sqlite_value, pg_value)
    outcomes = _commands(db_url, tmp_path)  # tests.helpers.run fails the test on any traceback
    readers = (
        {"status", "apply", "rollback", "delete"}
        if table == "extension_schemas"
        else {"history", "apply", "rollback", "delete"}
    )
    for command, outcome in outcomes.items():
        if command not in readers:
            continue
        assert outcome.exit_code == 3, (command, outcome)
        assert "ES405" in outcome.stderr, (command, outcome.stderr)
        assert f"{table}[plugin_id='notes'" in outcome.stderr, (command, outcome.stderr)
        if table == "extension_migrations":
            assert "migration_id='0001'" in outcome.stderr, (command, outcome.stderr)
        assert "extschema repair notes" in outcome.stderr
    # Nothing ran: the plugin's table is still there, as version 1.0.0 left it.
    columns = execute(
        db_url, "SELECT * FROM " + ('"ext_notes__note"' if db_url.startswith("sqlite") else '"ext_notes"."note"')
    )
    assert columns == []


def test_corrupted_registry_json_output_is_json(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "v1").mkdir()
    assert run("apply", str(write_schema(tmp_path / "v1", "notes", V1)), "-d", db_url).exit_code == 0
    _corrupt(db_url, "extension_migrations", "statements", "5", "5")
    outcome = run("history", "-d", db_url, "-o", "json")
    assert outcome.exit_code == 3
    assert outcome.json()["problems"][0]["code"] == "ES405"
