"""Engine behaviour that needs a real database: lock timeouts, error classes, stale plans, drift."""

from __future__ import annotations

import ast
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from extschema import planning, reconcile
from extschema.dialects import ErrorClass, PostgresDialect, SqliteDialect
from extschema.engine import Engine, StalePlan, redact
from extschema.problems import ProblemError
from tests.helpers import EXAMPLES, execute, run, write_schema

V1 = """
pluginId: locked
version: 1.0.0
tables:
  - name: item
    fields: [{name: title, type: String}]
"""
V2 = V1.replace("1.0.0", "1.1.0").replace(
    "fields: [{name: title, type: String}]", "fields: [{name: title, type: String}, {name: note, type: Text}]"
)


@pytest.mark.postgres
def test_lock_timeout_is_retryable_recorded_and_leaves_nothing(pg_url: str, tmp_path: Path) -> None:
    assert run("apply", str(write_schema(tmp_path, "locked", V1)), "-d", pg_url).exit_code == 0
    (tmp_path / "v2").mkdir()
    v2 = write_schema(tmp_path / "v2", "locked", V2)
    engine = Engine(pg_url, lock_timeout_ms=300)
    holder = psycopg.connect(pg_url)
    try:
        # An application transaction holds the table: ALTER TABLE must wait, and gives up after lock_timeout.
        holder.execute('LOCK TABLE "ext_locked"."item" IN ACCESS SHARE MODE')
        with pytest.raises(ProblemError) as info:
            reconcile.reconcile(engine, reconcile.load([str(v2)]), lambda line: None)
        assert info.value.kind == "retryable"
        assert info.value.problems[0].code == "ES403" and "55P03" in info.value.problems[0].message
    finally:
        holder.rollback()
        holder.close()
    columns = execute(pg_url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'item'")
    assert {c for (c,) in columns} == {"id", "title"}
    history = engine.history("locked")
    assert [(m.migration_id, m.status) for m in history] == [("0001", "executed"), ("0002", "failed")]
    assert "lock timeout" in (history[1].error_message or "")
    assert engine.registration("locked").status == "failed"  # type: ignore[union-attr]
    # Once the lock is gone, the same apply goes through.
    results = reconcile.reconcile(engine, reconcile.load([str(v2)]), lambda line: None)
    assert results[0].changed and results[0].migration_id == "0003"
    assert engine.registration("locked").status == "active"  # type: ignore[union-attr]
    engine.close()


def test_stale_plan_is_detected(sqlite_url: str) -> None:
    engine = Engine(sqlite_url)
    loaded = reconcile.load([str(EXAMPLES / "custom-reports.yaml")])[0]
    with pytest.raises(ProblemError):  # the core tables are missing: conflict, nothing runs
        reconcile.reconcile(engine, [loaded], lambda line: None)
    with pytest.raises(StalePlan):
        engine.apply(loaded.owner, loaded.spec, planning.Plan("customreports", ()), "not-the-base", [])
    engine.close()


def test_error_classification() -> None:
    class WithState(Exception):
        def __init__(self, sqlstate: str) -> None:
            super().__init__(sqlstate)
            self.sqlstate = sqlstate

    pg = PostgresDialect()
    assert pg.classify(WithState("55P03")) is ErrorClass.RETRYABLE
    assert pg.classify(WithState("40P01")) is ErrorClass.RETRYABLE
    assert pg.classify(WithState("40001")) is ErrorClass.RETRYABLE
    assert pg.classify(WithState("08006")) is ErrorClass.UNREACHABLE
    assert pg.classify(WithState("57P01")) is ErrorClass.UNREACHABLE
    assert pg.classify(WithState("42P07")) is ErrorClass.PERMANENT
    assert pg.classify(WithState("23505")) is ErrorClass.PERMANENT
    assert pg.classify(ValueError("no sqlstate")) is ErrorClass.PERMANENT
    wrapped = sa.exc.OperationalError("SELECT 1", None, WithState("40P01"))
    assert pg.classify(wrapped) is ErrorClass.RETRYABLE
    lite = SqliteDialect()
    import sqlite3

    assert lite.classify(sqlite3.OperationalError("database is locked")) is ErrorClass.RETRYABLE
    assert lite.classify(sqlite3.OperationalError("unable to open database file")) is ErrorClass.UNREACHABLE
    assert lite.classify(sqlite3.IntegrityError("CHECK constraint failed")) is ErrorClass.PERMANENT


def test_status_reports_drift(db_url: str, tmp_path: Path) -> None:
    spec = write_schema(
        tmp_path,
        "locked",
        V1.replace("fields: [{name: title, type: String}]", "fields: [{name: title, type: String}]\n  - name: other"),
    )
    assert run("apply", str(spec), "-d", db_url).exit_code == 0
    table = '"ext_locked__other"' if db_url.startswith("sqlite") else '"ext_locked"."other"'
    execute(db_url, f"DROP TABLE {table}")
    outcome = run("status", "-d", db_url)
    assert "missing ext_locked" in outcome.stdout and "other" in outcome.stdout  # the DRIFT column


def test_redact_hides_passwords() -> None:
    assert "secret" not in redact("postgresql://user:secret@host/db")
    assert redact("::") == "<unparseable database URL>"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://u@h:notaport/db", "not a database URL"),
        ("postgresql://u@localhost:99999/db", "port 99999 is out of range"),
        ("postgresql://u@localhost:0/db", "port 0 is out of range"),
        ("postgresql://[::1/db", "not a database URL"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("oracle://u@h/db", "unsupported database"),
    ],
)
def test_unusable_urls_are_usage_errors(url: str, says: str) -> None:
    for command in (["status"], ["history"], ["rollback", "x"]):
        outcome = run(*command, "-d", url)  # fails the test on a traceback
        assert outcome.exit_code == 2, (command, outcome)
        assert "ES404" in outcome.stderr and says in outcome.stderr, outcome.stderr


#: What planning calls a plan: the engine runs plans, made above it, and calls none of these.
_PLANNER = {"plan", "teardown", "rollback", "planner"}


def test_the_engine_never_plans() -> None:
    """No engine module reaches the planner (import-linter sees only direct imports of planning.planner):
    rollback, teardown, restore and repair plans are made in reconcile and handed to the engine."""
    from extschema import engine

    found = []
    for path in sorted(Path(engine.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if node.value.id == "planning" and node.attr in _PLANNER:
                    found.append(f"{path.name}:{node.lineno}: planning.{node.attr}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("extschema.planning"):
                names = {a.name for a in node.names}
                if node.module == "extschema.planning.planner" or names & _PLANNER:
                    found.append(f"{path.name}:{node.lineno}: from {node.module} import {', '.join(sorted(names))}")
    assert found == []


@pytest.mark.postgres
def test_a_connection_lost_during_a_migration_step_is_unreachable_not_a_failed_migration(pg_url: str) -> None:
    """Migration steps run on the raw psycopg cursor, whose errors SQLAlchemy does not wrap: a connection lost
    mid-statement (the chaos suite's black-holed connection during a concurrent index build) was ES402, a failed
    migration the operator does not retry, and the index was never built; it is ES401, retried."""
    import socket

    from extschema.engine.connection import Database

    database = Database(pg_url)
    try:
        with database.sa_engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            with socket.fromfd(raw.fileno(), socket.AF_INET, socket.SOCK_STREAM) as sock:  # a dup: shuts it down
                sock.shutdown(socket.SHUT_RDWR)
            with pytest.raises(psycopg.Error) as lost:
                database.execute(conn, ["SELECT 1"])
            conn.invalidate()
        assert not isinstance(lost.value, sa.exc.DBAPIError) and getattr(lost.value, "sqlstate", None) is None
        (problem,) = database.problem(lost.value).problems
        assert problem.code == "ES401" and "cannot reach" in problem.message
    finally:
        database.sa_engine.dispose()


def test_the_registered_spec_is_the_one_a_fresh_read_parses(db_url: str) -> None:
    """The engine keeps the spec it records (sharing the caller's tables) instead of parsing its stored JSON
    again: it must equal what another engine reads back, operational fields (not stored) at their defaults."""
    body = {
        "apiVersion": "extschema.io/v1alpha1",
        "kind": "ExtensionSchema",
        "metadata": {"name": "kept", "namespace": "ns"},
        "spec": {
            "pluginId": "kept",
            "version": "1.0.0",
            "driftPolicy": "Repair",
            "targetRef": {"name": "db"},
            "approvedPlanHashes": ["sha256:abc"],
            "tables": [
                {"name": "item", "fields": [{"name": "title", "type": "String"}], "indexes": [{"fields": ["title"]}]}
            ],
        },
    }
    loaded = reconcile.from_object(body, "ns/kept")
    writer, reader = Engine(db_url), Engine(db_url)
    try:
        reconcile.reconcile(writer, [loaded], lambda line: None)
        kept, read = writer.registration("kept"), reader.registration("kept")
        assert kept is not None and read is not None
        assert kept.spec == read.spec and kept.spec.checksum() == loaded.spec.checksum()
        assert kept.spec.target_ref is None and kept.spec.tables is loaded.spec.tables
        assert [r.spec for r in writer.registrations()] == [r.spec for r in reader.registrations()]
    finally:
        writer.close()
        reader.close()
