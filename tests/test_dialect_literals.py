"""Constants from a spec (defaults, enum values, patterns) stay data whatever the server's settings.

With ``standard_conforming_strings = off`` PostgreSQL reads a backslash in '...' as an escape, so a
literal that only doubles quotes lets ``x\\'); DROP TABLE ...; --`` end the string early.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from extschema.dialects import PostgresDialect, SqliteDialect
from tests.helpers import execute, ext_table, run, write_schema

INJECTION = "x\\'); DROP TABLE canary; --"
TRAILING_BACKSLASH = "ends with a backslash\\"
ODD = "tab\there, newline\nthere, controls \x01\x1b[31m\x7f\r, quote ' and \\' and \\\\ and \\x41 and $$ and %s"

SPEC = {
    "pluginId": "crafted",
    "version": "1.0.0",
    "enums": [{"name": "mood", "values": ["plain", INJECTION, TRAILING_BACKSLASH]}],
    "tables": [
        {
            "name": "item",
            "fields": [
                {"name": "injected", "type": "String", "default": INJECTION},
                {"name": "tail", "type": "Text", "default": TRAILING_BACKSLASH},
                {"name": "odd", "type": "Text", "default": ODD},
                {"name": "doc", "type": "Json", "default": INJECTION},
                {"name": "mood", "type": "Enum", "enum": "mood", "default": INJECTION},
                {"name": "code", "type": "String", "validation": {"pattern": "^[a-z]\\.txt$"}},
            ],
        }
    ],
}


#: Parses as SQL when rendered with doubled quotes only: the DROP runs (one batch) unless the literal is safe.
ENUM_ONLY = {
    "pluginId": "crafted",
    "version": "1.0.0",
    "enums": [{"name": "mood", "values": ["plain", INJECTION]}],
    "tables": [{"name": "item", "fields": [{"name": "mood", "type": "Enum", "enum": "mood"}]}],
}


def _standard_strings_off(url: str) -> None:
    """Every new session of the test database reads backslashes in '...' as escapes."""
    database = url.rsplit("/", 1)[1]
    execute(url, f'ALTER DATABASE "{database}" SET standard_conforming_strings = off')
    assert execute(url, "SHOW standard_conforming_strings") == [("off",)]


def _insert_via_engine(url: str, sql: str, params: dict[str, object] | None = None) -> list[sa.Row[object]]:
    """Through extschema's own connection setup, so only the literals are under test here."""
    from extschema.engine import Engine

    engine = Engine(url).sa_engine
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(sql), params or {})
            return list(result.fetchall()) if result.returns_rows else []
    finally:
        engine.dispose()


def test_crafted_constants_stay_data(db_url: str, tmp_path: Path) -> None:
    if db_url.startswith("postgresql"):
        _standard_strings_off(db_url)
    execute(db_url, "CREATE TABLE canary (id INTEGER)")
    path = write_schema(tmp_path, "crafted", json.dumps(SPEC))
    outcome = run("apply", str(path), "-d", db_url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert execute(db_url, "SELECT count(*) FROM canary") == [(0,)]

    table = ext_table(db_url, "crafted", "item")
    row = _insert_via_engine(db_url, f"INSERT INTO {table} DEFAULT VALUES RETURNING injected, tail, odd, mood")
    assert tuple(row[0]) == (INJECTION, TRAILING_BACKSLASH, ODD, INJECTION)
    assert json.loads(execute(db_url, f"SELECT CAST(doc AS TEXT) FROM {table}")[0][0]) == INJECTION
    for value in SPEC["enums"][0]["values"]:  # type: ignore[index]
        _insert_via_engine(db_url, f"INSERT INTO {table} (mood) VALUES (:v)", {"v": value})
    # '\.' is a literal dot: PostgreSQL must not have read the pattern as '^[a-z].txt$'.
    _insert_via_engine(db_url, f"INSERT INTO {table} (code) VALUES ('a.txt')")
    with pytest.raises(sa.exc.IntegrityError):
        _insert_via_engine(db_url, f"INSERT INTO {table} (code) VALUES ('axtxt')")


@pytest.mark.postgres
def test_an_injected_enum_value_does_not_run(pg_url: str, tmp_path: Path) -> None:
    _standard_strings_off(pg_url)
    execute(pg_url, "CREATE TABLE canary (id INTEGER)")
    outcome = run("apply", str(write_schema(tmp_path, "crafted", json.dumps(ENUM_ONLY))), "-d", pg_url)
    assert outcome.exit_code == 0, outcome.stderr
    assert execute(pg_url, "SELECT count(*) FROM canary") == [(0,)]
    labels = execute(pg_url, "SELECT unnest(enum_range(NULL::ext_crafted.mood))::text")
    assert [label for (label,) in labels] == ["plain", INJECTION]
    # The recorded rollback re-runs later on a connection with the same setting: it must drop exactly the plugin.
    assert run("rollback", "crafted", "-d", pg_url).exit_code == 0
    assert execute(pg_url, "SELECT count(*) FROM canary") == [(0,)]
    assert execute(pg_url, "SELECT to_regtype('ext_crafted.mood') IS NULL") == [(True,)]


@pytest.mark.parametrize(
    "value",
    ["plain", "it's", "back\\slash", "ends\\", "\\'); DROP TABLE t; --", "'", "\\", "line\nbreak", "ünï\\cödé"],
)
def test_literals_read_back_exactly_on_postgresql_either_setting(value: str) -> None:
    """What the literal means does not depend on standard_conforming_strings (checked with PostgreSQL's lexer
    rules: an E'' string reads backslash escapes, a plain one has no backslash to misread)."""
    rendered = PostgresDialect().literal(value)
    if rendered.startswith("E'"):
        body = rendered[2:-1]
        assert body.replace("\\\\", "").replace("''", "").count("\\") == 0
        assert body.replace("\\\\", "\0").replace("''", "'").replace("\0", "\\") == value
    else:
        assert "\\" not in rendered
        assert rendered[1:-1].replace("''", "'") == value
    assert SqliteDialect().literal(value) == "'" + value.replace("'", "''") + "'"


@pytest.mark.postgres
def test_rollback_sql_recorded_by_older_versions_runs_as_written(pg_url: str, tmp_path: Path) -> None:
    """Older versions recorded '...' literals with raw backslashes; the migration preamble turns
    standard_conforming_strings on, so re-running them later means what it meant then."""
    from extschema.engine import script, sql_checksum

    v1 = {**ENUM_ONLY, "enums": [{"name": "mood", "values": ["plain", "back\\slash"]}]}
    v2 = {**v1, "version": "1.1.0", "enums": [{"name": "mood", "values": ["plain", "back\\slash", "new"]}]}
    assert run("apply", str(write_schema(tmp_path, "crafted", json.dumps(v1))), "-d", pg_url).exit_code == 0
    (tmp_path / "v2").mkdir()
    assert run("apply", str(write_schema(tmp_path / "v2", "crafted", json.dumps(v2))), "-d", pg_url).exit_code == 0
    execute(pg_url, "INSERT INTO ext_crafted.item (mood) VALUES ('back\\slash')")
    _standard_strings_off(pg_url)
    # As an older version would have recorded the rollback (it re-creates the enum with its old values).
    where = "FROM extschema.extension_migrations WHERE migration_id = '0002'"
    ((statements, rollback),) = execute(pg_url, f"SELECT statements, rollback_statements {where}")
    old_style = [s.replace("E'back\\\\slash'", "'back\\slash'") for s in rollback]
    assert old_style != rollback
    execute(
        pg_url,
        "UPDATE extschema.extension_migrations SET rollback_statements = CAST(:r AS JSON), rollback_sql = :text, "
        "checksum_sql = :sum WHERE migration_id = '0002'",
        {"r": json.dumps(old_style), "text": script(old_style), "sum": sql_checksum(statements, old_style)},
    )
    outcome = run("rollback", "crafted", "-d", pg_url)
    assert outcome.exit_code == 0, outcome.stderr
    labels = execute(pg_url, "SELECT unnest(enum_range(NULL::ext_crafted.mood))::text")
    assert [label for (label,) in labels] == ["plain", "back\\slash"]
    assert execute(pg_url, "SELECT mood::text FROM ext_crafted.item") == [("back\\slash",)]


def test_a_nul_character_never_reaches_a_literal(tmp_path: Path) -> None:
    """PostgreSQL cannot store NUL in text: validation refuses it in defaults, enum values and descriptions."""
    spec = {
        "pluginId": "crafted",
        "version": "1.0.0",
        "enums": [{"name": "mood", "values": ["a\0b"]}],
        "tables": [{"name": "item", "description": "x\0", "fields": [{"name": "t", "type": "Text", "default": "\0"}]}],
    }
    outcome = run("validate", str(write_schema(tmp_path, "crafted", json.dumps(spec))), "-o", "json")
    assert outcome.exit_code == 1
    found = {(p["path"], p["code"]) for p in outcome.json()["problems"]}
    assert {
        ("spec.enums[0].values[0]", "ES109"),
        ("spec.tables[0].description", "ES010"),
        ("spec.tables[0].fields[0].default", "ES105"),
    } <= found
