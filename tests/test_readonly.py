"""Read-only commands create nothing and work without write rights; a rejected apply changes nothing (defect 7)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.helpers import execute, run, tables, write_schema
from tests.specs import NOTES

NOTES_V2 = NOTES.replace("1.0.0", "1.1.0").replace(
    "{name: title, type: String}", "{name: title, type: String}, {name: body, type: Text}"
)
#: Not additive: changing a column's type is refused (ES301).
NOTES_REFUSED = NOTES.replace("1.0.0", "2.0.0").replace("{name: title, type: String}", "{name: title, type: Int}")
#: References a core table the database does not have (a conflict).
NEEDS_CORE = """
pluginId: needy
version: 1.0.0
tables:
  - name: thing
    fields: [{name: title, type: String}]
relationships:
  - {source: thing, target: core.work_orders, type: ManyToOne}
"""


def _snapshot(url: str) -> dict[str, Any]:
    """Everything a command could have created or changed: tables, schemas, registry rows."""
    found = tables(url)
    state: dict[str, Any] = {"tables": found}
    if not url.startswith("sqlite"):
        state["schemas"] = {r[0] for r in execute(url, "SELECT nspname FROM pg_namespace")}
    prefix = "" if url.startswith("sqlite") else "extschema."
    for table in ("extension_schemas", "extension_migrations"):
        if f"{prefix}{table}" in found:
            state[table] = sorted(map(tuple, execute(url, f"SELECT * FROM {prefix}{table}")), key=repr)
    return state


def _read_commands(url: str, spec: Path) -> dict[str, int]:
    outcomes = {
        "validate": run("validate", str(spec)),
        "plan": run("plan", str(spec), "-d", url),
        "status": run("status", "-d", url),
        "history": run("history", "-d", url),
        "conflicts": run("conflicts", str(spec), "-d", url),
        "status-json": run("status", "-d", url, "-o", "json"),
    }
    for name, outcome in outcomes.items():
        assert outcome.exit_code == 0, (name, outcome)
    return {name: o.exit_code for name, o in outcomes.items()}


def test_read_only_commands_create_nothing_on_a_fresh_database(db_url: str, tmp_path: Path) -> None:
    spec = write_schema(tmp_path, "notes", NOTES)
    run("status", "-d", db_url)  # creates nothing, not even the SQLite file (the snapshot below opens it)
    before = _snapshot(db_url)
    _read_commands(db_url, spec)
    assert _snapshot(db_url) == before
    assert not any("extension_" in t for t in before["tables"])


def test_read_only_commands_change_nothing_on_a_used_database(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "v1").mkdir()
    assert run("apply", str(write_schema(tmp_path / "v1", "notes", NOTES)), "-d", db_url).exit_code == 0
    before = _snapshot(db_url)
    _read_commands(db_url, write_schema(tmp_path, "notes", NOTES_V2))
    assert _snapshot(db_url) == before


@pytest.mark.parametrize("body", [NEEDS_CORE, NOTES_REFUSED], ids=["conflict", "refused-change"])
def test_a_rejected_apply_leaves_the_database_as_it_was(db_url: str, tmp_path: Path, body: str) -> None:
    if body is NOTES_REFUSED:
        (tmp_path / "v1").mkdir()
        assert run("apply", str(write_schema(tmp_path / "v1", "notes", NOTES)), "-d", db_url).exit_code == 0
    before = _snapshot(db_url)
    outcome = run("apply", str(write_schema(tmp_path, "notes", body)), "-d", db_url)
    assert outcome.exit_code == 1, outcome
    assert _snapshot(db_url) == before


def test_refused_writes_on_a_fresh_database_create_nothing(db_url: str, tmp_path: Path) -> None:
    before = _snapshot(db_url)
    for command in (["rollback", "notes"], ["delete", "notes"]):
        outcome = run(*command, "-d", db_url)
        assert outcome.exit_code == 1 and "ES306" in outcome.stderr, outcome
    assert run("repair", "notes", "--accept-edits", "-d", db_url).exit_code == 0
    assert _snapshot(db_url) == before


def test_read_only_commands_work_on_a_read_only_sqlite_file(sqlite_url: str, tmp_path: Path) -> None:
    (tmp_path / "v1").mkdir()
    assert run("apply", str(write_schema(tmp_path / "v1", "notes", NOTES)), "-d", sqlite_url).exit_code == 0
    path = sqlite_url.removeprefix("sqlite:///")
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    before = _snapshot(sqlite_url)
    _read_commands(read_only, write_schema(tmp_path, "notes", NOTES_V2))
    assert "notes" in run("status", "-d", read_only).stdout
    assert _snapshot(sqlite_url) == before


def _reader(admin_url: str, database_url: str, schemas: list[str]) -> str:
    """A role that may connect and read, nothing else; its URL for *database_url*."""
    role = f"reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT CONNECT ON DATABASE {database_url.rpartition('/')[2]} TO {role}")
        for schema in schemas:
            conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')
            conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO {role}')
    return database_url.replace("postgres@", f"{role}@", 1)


@pytest.mark.postgres
def test_read_only_commands_work_under_a_read_only_role(pg_admin_url: str, pg_url: str, tmp_path: Path) -> None:
    spec = write_schema(tmp_path, "notes", NOTES)
    empty = _reader(pg_admin_url, pg_url, ["public"])
    before = _snapshot(pg_url)
    _read_commands(empty, spec)
    assert "no plugins registered" in run("status", "-d", empty).stdout
    assert _snapshot(pg_url) == before
    (tmp_path / "v1").mkdir()
    assert run("apply", str(write_schema(tmp_path / "v1", "notes", NOTES)), "-d", pg_url).exit_code == 0
    used = _reader(pg_admin_url, pg_url, ["public", "extschema", "ext_notes"])
    before = _snapshot(pg_url)
    _read_commands(used, write_schema(tmp_path, "notes", NOTES_V2))
    status = run("status", "-d", used, "-o", "json").items()
    assert [(p["pluginId"], p["tables"]) for p in status] == [("notes", ["ext_notes.note"])]
    assert len(run("history", "-d", used, "-o", "json").items()) == 1
    assert _snapshot(pg_url) == before
