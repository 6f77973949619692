"""Valid specs do not end in a database error: reserved words, versions, metadata names, DateTime defaults."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from sqlalchemy.dialects.postgresql.base import RESERVED_WORDS as SA_POSTGRESQL_RESERVED
from sqlalchemy.dialects.sqlite.base import SQLiteIdentifierPreparer

from extschema import limits, model
from extschema.validation import identifiers, validate, validate_metadata
from tests.helpers import execute, ext_table, run, write_schema

SA_SQLITE_RESERVED = frozenset(SQLiteIdentifierPreparer.reserved_words)
UNQUOTED = identifiers.SQLITE_UNQUOTED_KEYWORDS | identifiers.POSTGRESQL_UNQUOTED_KEYWORDS


# --- The frozen word lists -----------------------------------------------------------------------


def test_postgresql_reserved_words_cover_sqlalchemys() -> None:
    assert SA_POSTGRESQL_RESERVED <= identifiers.POSTGRESQL_RESERVED_WORDS
    # SQLAlchemy's list predates collation, concurrently, lateral and tablesample.
    newer = identifiers.POSTGRESQL_RESERVED_WORDS - SA_POSTGRESQL_RESERVED
    assert newer == {"collation", "concurrently", "lateral", "tablesample"}


@pytest.mark.postgres
def test_postgresql_reserved_words_cover_the_servers(pg_admin_url: str) -> None:
    with psycopg.connect(pg_admin_url) as conn:
        rows = conn.execute("SELECT word FROM pg_get_keywords() WHERE catcode IN ('R', 'T')").fetchall()
    assert {word for (word,) in rows} <= identifiers.POSTGRESQL_RESERVED_WORDS


@pytest.mark.postgres
def test_unquoted_postgresql_keywords_are_exactly_those_postgresql_refuses_bare(pg_admin_url: str) -> None:
    refused = set()
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for word in sorted(identifiers.POSTGRESQL_RESERVED_WORDS - SA_POSTGRESQL_RESERVED):
            try:
                conn.execute(f"CREATE TEMP TABLE t ({word} text, x text, CONSTRAINT {word} UNIQUE (x))")
                conn.execute("DROP TABLE t")
            except psycopg.errors.SyntaxError:
                refused.add(word)
    assert refused == identifiers.POSTGRESQL_UNQUOTED_KEYWORDS


def test_sqlite_keywords_cover_sqlalchemys_list() -> None:
    # SQLAlchemy also lists the literals true and false, which SQLite's keyword table does not.
    assert SA_SQLITE_RESERVED - {"true", "false"} <= identifiers.SQLITE_KEYWORDS


def _refused_bare(word: str) -> bool:
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute(f"CREATE TABLE t ({word} TEXT, x TEXT, CONSTRAINT {word} UNIQUE (x))")
    except sqlite3.OperationalError:
        return True
    return False


def test_unquoted_sqlite_keywords_are_exactly_those_sqlite_refuses_bare() -> None:
    """The words SQLAlchemy leaves unquoted on SQLite and SQLite cannot read as names."""
    unquoted = identifiers.SQLITE_KEYWORDS - SA_SQLITE_RESERVED
    assert {w for w in unquoted if _refused_bare(w)} == identifiers.SQLITE_UNQUOTED_KEYWORDS


# --- Validate-time rejection ---------------------------------------------------------------------


def _spec(**top: Any) -> dict[str, Any]:
    return {"pluginId": "rw", "version": "1.0.0", **top}


@pytest.mark.parametrize("name", sorted(identifiers.POSTGRESQL_SYSTEM_COLUMNS | UNQUOTED))
def test_reserved_column_names_are_rejected_with_a_suggestion(name: str) -> None:
    data = _spec(tables=[{"name": "item", "fields": [{"name": name, "type": "String"}]}])
    (problem,) = validate(model.parse_spec(data))
    assert (problem.code, problem.path) == ("ES124", "spec.tables[0].fields[0].name")
    assert f"{name}_value" in problem.message


def test_reserved_constraint_name_is_rejected_but_index_name_is_not() -> None:
    table = {
        "name": "item",
        "fields": [{"name": "x", "type": "String"}],
        "uniqueConstraints": [{"name": "returning", "fields": ["x"]}],
        "indexes": [{"name": "nothing", "fields": ["x"]}],
    }
    problems = validate(model.parse_spec(_spec(tables=[table])))
    assert [(p.code, p.path) for p in problems] == [("ES124", "spec.tables[0].uniqueConstraints[0].name")]


def test_version_length_is_bounded() -> None:
    long_version = "1.0.0-" + "a" * limits.MAX_VERSION_LENGTH
    (problem,) = validate(model.parse_spec(_spec(version=long_version)))
    assert (problem.code, problem.path) == ("ES115", "spec.version") and "characters long" in problem.message
    assert validate(model.parse_spec(_spec(version="1.0.0-" + "a" * (limits.MAX_VERSION_LENGTH - 6)))) == []


@pytest.mark.parametrize(
    ("name", "namespace", "path"),
    [
        ("My_Plugin", None, "metadata.name"),
        ("-x", None, "metadata.name"),
        ("a" * 254, None, "metadata.name"),
        ("ok", "Bad.Namespace", "metadata.namespace"),
        ("ok", "n" * 64, "metadata.namespace"),
    ],
)
def test_metadata_names_follow_kubernetes(name: str, namespace: str | None, path: str) -> None:
    (problem,) = validate_metadata(model.ObjectMeta(name=name, namespace=namespace))
    assert (problem.code, problem.path) == ("ES020", path)


def test_good_metadata_names_pass() -> None:
    assert validate_metadata(model.ObjectMeta(name="a" * 253)) == []
    assert validate_metadata(model.ObjectMeta(name="custom-reports.v1", namespace="team-a")) == []


def test_cli_reports_a_bad_metadata_name(tmp_path: Path) -> None:
    path = write_schema(tmp_path, "Bad_Name", "pluginId: rw\nversion: 1.0.0")
    outcome = run("validate", str(path))
    assert outcome.exit_code != 0 and "ES020" in outcome.stderr + outcome.stdout


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0001-01-01T00:00:00+01:00", "outside the years 1 to 9999"),
        ("9999-12-31T23:59:59-01:00", "outside the years 1 to 9999"),
        ("2024-01-01T00:00:00+16:00", "±15:59"),
    ],
)
def test_datetime_defaults_outside_what_databases_store_are_rejected(value: str, reason: str) -> None:
    data = _spec(tables=[{"name": "item", "fields": [{"name": "at", "type": "DateTime", "default": value}]}])
    (problem,) = validate(model.parse_spec(data))
    assert (problem.code, problem.path) == ("ES105", "spec.tables[0].fields[0].default") and reason in problem.message


# --- Both databases ------------------------------------------------------------------------------

WORDS = sorted(
    identifiers.POSTGRESQL_RESERVED_WORDS | identifiers.SQLITE_KEYWORDS | identifiers.POSTGRESQL_SYSTEM_COLUMNS
)

TABLES = ("order", "user", "select", "window", "analyse", "do")


def _apply(db_url: str, tmp_path: Path, spec: dict[str, Any]) -> tuple[list[tuple[str, str]], int, str]:
    problems = [(p.code, p.path) for p in validate(model.parse_spec(spec))]
    path = write_schema(tmp_path, "rw", yaml.safe_dump(spec, sort_keys=False))
    outcome = run("apply", str(path), "-d", db_url)
    return problems, outcome.exit_code, outcome.stderr + outcome.stdout


def test_every_reserved_word_is_a_usable_name_or_rejected_at_validate_time(db_url: str, tmp_path: Path) -> None:
    """Before: `returning`/`nothing` validated and failed on SQLite; `collation`, `lateral`..., `xmin`... on
    PostgreSQL (ES402, syntax error / conflicts with a system column)."""
    usable = [w for w in WORDS if w != "id" and identifiers.identifier_reason(w) is None]
    fields = [{"name": w, "type": "String"} for w in usable]
    # A unique constraint's index is a relation with a row type: it may not share an enum's name.
    constraint_names = [w for w in usable if w not in TABLES and w not in identifiers.POSTGRESQL_RESERVED_WORDS][:40]
    constraints = [{"name": w, "fields": [w]} for w in constraint_names + sorted(UNQUOTED)]
    spec = _spec(
        enums=[{"name": w, "values": ["a"]} for w in sorted(identifiers.POSTGRESQL_RESERVED_WORDS - set(TABLES))],
        tables=[
            {"name": "item", "fields": fields, "uniqueConstraints": constraints, "indexes": [{"fields": usable[:3]}]},
            *({"name": w, "fields": [{"name": "x", "type": "Int"}]} for w in TABLES),
        ],
    )
    problems, exit_code, output = _apply(db_url, tmp_path, spec)
    assert "ES402" not in output and (exit_code == 0) == (problems == []), output
    rejected = {usable[int(path.split("[")[2].split("]")[0])] for code, path in problems if ".fields[" in path}
    assert {code for code, _ in problems} <= {"ES124"}
    assert rejected == identifiers.POSTGRESQL_SYSTEM_COLUMNS | UNQUOTED
    assert sum(".uniqueConstraints[" in path for _, path in problems) == len(UNQUOTED)
    # Without the rejected names the same spec applies, and rows go in and come out.
    spec["tables"][0]["fields"] = [f for f in fields if f["name"] not in rejected]
    spec["tables"][0]["uniqueConstraints"] = [c for c in constraints if c["name"] not in rejected]
    problems, exit_code, output = _apply(db_url, tmp_path, spec)
    assert problems == [] and exit_code == 0, output
    item = ext_table(db_url, "rw", "item")
    execute(
        db_url, f'INSERT INTO {item} ("order", "user", "select") VALUES (:a, :b, :c)', {"a": "1", "b": "2", "c": "3"}
    )
    assert execute(db_url, f'SELECT "order", "user", "select" FROM {item}') == [("1", "2", "3")]


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00", "2024-01-01T00:00:00+16:00"]
)
def test_datetime_default_edges_are_stored_or_rejected_at_validate_time(
    db_url: str, tmp_path: Path, value: str
) -> None:
    """Before: +01:00 on year 1 validated but PostgreSQL stored a date BC no client reads; +16:00 failed apply."""
    spec = _spec(tables=[{"name": "item", "fields": [{"name": "n", "type": "Int"}, _at(value)]}])
    problems, exit_code, output = _apply(db_url, tmp_path, spec)
    if problems:
        assert problems == [("ES105", "spec.tables[0].fields[1].default")] and exit_code != 0
        return
    assert exit_code == 0, output
    item = ext_table(db_url, "rw", "item")
    execute(db_url, f"INSERT INTO {item} (n) VALUES (1)")
    (stored,) = execute(db_url, f"SELECT at FROM {item}")[0]
    assert str(stored)[:4] == value[:4]


def _at(value: str) -> dict[str, Any]:
    return {"name": "at", "type": "DateTime", "default": value}
