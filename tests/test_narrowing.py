"""Narrowing a field (a shorter String, fewer decimals, BigInt to Int, a rename and a narrowing at
once): what the data check counts is what the change meets, no value is truncated or rounded,
and what a narrowing may change is backed up — through the real CLI, on both databases."""

from __future__ import annotations

import concurrent.futures
import sqlite3
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from tests.helpers import Outcome, execute, ext_table, run, sa_url, write_schema

V1 = """
pluginId: shop
version: {version}
tables:
  - name: order
    fields:
{fields}
"""


def _spec(directory: Path, version: str, fields: str) -> Path:
    directory.mkdir(exist_ok=True)
    return write_schema(directory, "shop", V1.format(version=version, fields=fields))


def _applied(url: str, tmp_path: Path, fields: str) -> str:
    """Version 1.0.0 with *fields* applied; the order table's SQL name."""
    outcome = run("apply", str(_spec(tmp_path / "v1", "1.0.0", fields)), "-d", url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    return ext_table(url, "shop", "order")


def _plan(url: str, path: Path) -> dict[str, Any]:
    outcome = run("plan", str(path), "-d", url, "-o", "json")
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    plan: dict[str, Any] = outcome.item()
    return plan


def _violations(plan: dict[str, Any]) -> list[int]:
    return [op["check"]["count"] for op in plan["ops"] if op["check"] and op["check"]["kind"] == "rows_violating"]


def _refused(outcome: Outcome) -> None:
    assert outcome.exit_code == 1, outcome.stdout + outcome.stderr
    assert "ES309" in outcome.stderr + outcome.stdout, outcome.stdout + outcome.stderr
    assert "ES402" not in outcome.stderr + outcome.stdout


# --- defect: the count ran before the lock, the ALTER truncated what a writer committed meanwhile ---


def _lock_waiters(admin: psycopg.Connection[Any]) -> int:
    row = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("before", "after", "value"),
    [
        ("{name: a, type: String, validation: {maxLength: 10}}", "{name: a, type: String, validation: {maxLength: 5}}",
         "0123456789"),
        ("{name: a, type: Decimal, precision: 10, scale: 2}", "{name: a, type: Decimal, precision: 10, scale: 1}",
         "1.25"),
    ],
)  # fmt: skip
def test_a_row_written_while_the_narrowing_waits_is_refused_not_truncated(
    pg_url: str, tmp_path: Path, before: str, after: str, value: str
) -> None:
    """A writer's open transaction inserts a violating row; the approved apply waits for its lock, the
    writer commits: the apply is refused with ES309 and the row keeps its value (no truncation, no rounding)."""
    table = _applied(pg_url, tmp_path, f"      - {before}")
    path = _spec(tmp_path / "v2", "2.0.0", f"      - {after}")
    plan = _plan(pg_url, path)
    assert _violations(plan) == [0]
    with (
        psycopg.connect(pg_url) as writer,
        psycopg.connect(pg_url, autocommit=True) as admin,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        writer.execute(f"INSERT INTO {table} (a) VALUES (%s)", (value,))  # open transaction: not committed
        applying = pool.submit(
            run, "apply", str(path), "-d", pg_url, "--approve", plan["hash"], "--lock-timeout", "30s"
        )
        deadline = time.monotonic() + 30
        while _lock_waiters(admin) == 0:
            assert not applying.done(), applying.result()
            assert time.monotonic() < deadline, "apply never waited for the writer's lock"
            time.sleep(0.02)
        writer.commit()
        outcome = applying.result(timeout=60)
    _refused(outcome)
    assert [str(r[0]) for r in execute(pg_url, f"SELECT a FROM {table}")] == [value]


@pytest.mark.postgres
def test_a_row_written_while_a_narrowing_rollback_waits_is_refused_not_truncated(pg_url: str, tmp_path: Path) -> None:
    """Rolling back String(5) -> String(10) narrows it again: a longer row a writer commits while the
    rollback waits for its lock is refused (ES309), not cut to 5 characters."""
    table = _applied(pg_url, tmp_path, "      - {name: a, type: String, validation: {maxLength: 5}}")
    path = _spec(tmp_path / "v2", "2.0.0", "      - {name: a, type: String, validation: {maxLength: 10}}")
    outcome = run("apply", str(path), "-d", pg_url, "--approve", _plan(pg_url, path)["hash"])
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    with (
        psycopg.connect(pg_url) as writer,
        psycopg.connect(pg_url, autocommit=True) as admin,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        writer.execute(f"INSERT INTO {table} (a) VALUES ('0123456789')")  # open transaction: not committed
        rolling_back = pool.submit(run, "rollback", "shop", "-d", pg_url)
        deadline = time.monotonic() + 30
        while _lock_waiters(admin) == 0:
            assert not rolling_back.done(), rolling_back.result()
            assert time.monotonic() < deadline, "rollback never waited for the writer's lock"
            time.sleep(0.02)
        writer.commit()
        outcome = rolling_back.result(timeout=60)
    _refused(outcome)
    assert execute(pg_url, f"SELECT a FROM {table}") == [("0123456789",)]
    assert _type_of(pg_url, "a") == "VARCHAR(10)"


def _type_of(url: str, column: str) -> str:
    engine = sa.create_engine(sa_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            schema, name = ("ext_shop", "order") if url.startswith("postgresql") else (None, "ext_shop__order")
            found = {c["name"]: str(c["type"]) for c in sa.inspect(conn).get_columns(name, schema=schema)}
            return found[column]
    finally:
        engine.dispose()


CONVERSIONS = [
    ("{name: a, type: String, validation: {maxLength: 10}}", "{name: a, type: String, validation: {maxLength: 5}}",
     "'0123456789'"),
    ("{name: a, type: Decimal, precision: 10, scale: 2}", "{name: a, type: Decimal, precision: 10, scale: 1}",
     "'1.25'"),
    ("{name: a, type: BigInt}", "{name: a, type: Float}", "9007199254740993"),
    ("{name: a, type: BigInt}", "{name: a, type: Int}", "5000000000"),
]  # fmt: skip


@pytest.mark.parametrize(("before", "after", "value"), CONVERSIONS)
def test_the_recorded_narrowing_itself_refuses_a_violating_value(
    db_url: str, tmp_path: Path, before: str, after: str, value: str
) -> None:
    """The SQL a narrowing runs (and records, and a rollback runs again) fails on a value the new type
    cannot hold, instead of truncating or rounding it: run without extschema's count, it loses nothing."""
    table = _applied(db_url, tmp_path, f"      - {before}")
    path = _spec(tmp_path / "v2", "2.0.0", f"      - {after}")
    execute(db_url, f"INSERT INTO {table} (a) VALUES ({value})")
    kept = execute(db_url, f"SELECT a, CAST(a AS TEXT) FROM {table}")
    statements = _plan(db_url, path)["sql"]
    if db_url.startswith("sqlite"):
        connection = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
                for statement in statements:
                    connection.execute(statement)
            connection.execute("ROLLBACK")
        finally:
            connection.close()
    else:
        with psycopg.connect(db_url) as conn, pytest.raises(psycopg.Error, match="does not fit"):
            for statement in statements:
                conn.execute(statement)
    assert execute(db_url, f"SELECT a, CAST(a AS TEXT) FROM {table}") == kept


def test_a_string_narrowing_is_backed_up_and_rolled_back(db_url: str, tmp_path: Path) -> None:
    """String(10) -> String(5) may change no value (rows that do not fit are refused), yet it is backed
    up like a drop, and its rollback brings the column back from that backup."""
    table = _applied(db_url, tmp_path, "      - {name: a, type: String, validation: {maxLength: 10}}")
    execute(db_url, f"INSERT INTO {table} (a) VALUES ('abc'), (NULL)")
    path = _spec(tmp_path / "v2", "2.0.0", "      - {name: a, type: String, validation: {maxLength: 5}}")
    plan = _plan(db_url, path)
    assert _violations(plan) == [0]
    outcome = run("apply", str(path), "-d", db_url, "--approve", plan["hash"])
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert "backed up order.a to" in outcome.stdout + outcome.stderr
    listed = run("backups", "-d", db_url, "-o", "json")
    assert listed.exit_code == 0, listed.stderr
    assert '"sourceColumn": "a"' in listed.stdout, listed.stdout
    assert run("rollback", "shop", "-d", db_url).exit_code == 0
    assert execute(db_url, f"SELECT a FROM {table} ORDER BY id") == [("abc",), (None,)]


@pytest.mark.parametrize(
    ("before", "after", "rows", "edit", "expected"),
    [
        ("{name: a, type: String, validation: {maxLength: 10}}", "{name: a, type: String, validation: {maxLength: 5}}",
         "('abc'), ('de'), (NULL)", "'edit'", ["edit", "de", None]),
        ("{name: a, type: Int}", "{name: a, type: BigInt}", "(1), (2), (NULL)", "7", [7, 2, None]),
    ],
    ids=["narrowed", "widened"],
)  # fmt: skip
def test_rolling_back_a_retyped_column_keeps_values_written_since(
    db_url: str, tmp_path: Path, before: str, after: str, rows: str, edit: str, expected: list[object]
) -> None:
    """Before: the rollback set the column of every backed-up row from the backup, also over values
    written since (exit 0, no approval, no backup of them): they were gone. Now the backup gives back
    only values nobody changed since; a value written since is kept (converted back)."""
    table = _applied(db_url, tmp_path, f"      - {before}")
    execute(db_url, f"INSERT INTO {table} (a) VALUES {rows}")
    path = _spec(tmp_path / "v2", "2.0.0", f"      - {after}")
    outcome = run("apply", str(path), "-d", db_url, "--approve", _plan(db_url, path)["hash"])
    assert outcome.exit_code == 0 and "backed up order.a to" in outcome.stdout, outcome.stdout + outcome.stderr
    execute(db_url, f"UPDATE {table} SET a = {edit} WHERE id = 1")
    execute(db_url, f"UPDATE {table} SET a = NULL WHERE id = 2")
    execute(db_url, f"UPDATE {table} SET a = {rows.split(', ')[1]} WHERE id = 2")  # written back as it was
    rolled = run("rollback", "shop", "-d", db_url)
    assert rolled.exit_code == 0, rolled.stdout + rolled.stderr
    assert [r[0] for r in execute(db_url, f"SELECT a FROM {table} ORDER BY id")] == expected


def test_a_rollback_that_narrows_backs_the_column_up(db_url: str, tmp_path: Path) -> None:
    """Rolling back String(5) -> String(10) narrows the column again: backed up like any narrowing."""
    table = _applied(db_url, tmp_path, "      - {name: a, type: String, validation: {maxLength: 5}}")
    execute(db_url, f"INSERT INTO {table} (a) VALUES ('abc')")
    path = _spec(tmp_path / "v2", "2.0.0", "      - {name: a, type: String, validation: {maxLength: 10}}")
    assert run("apply", str(path), "-d", db_url).exit_code == 0
    outcome = run("rollback", "shop", "-d", db_url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert "backed up order.a to" in outcome.stdout, outcome.stdout
    listed = run("backups", "shop", "-d", db_url, "-o", "json")
    assert listed.exit_code == 0 and '"sourceColumn": "a"' in listed.stdout, listed.stdout
    assert execute(db_url, f"SELECT a FROM {table}") == [("abc",)]
    assert _type_of(db_url, "a") == "VARCHAR(5)"


# --- defect: a rename and a narrowing in one version counted the new name before the rename ---


RENAMED = "      - {name: b, type: String, renamedFrom: a, validation: {maxLength: 5}}"


def test_rename_and_narrow_counts_the_values_under_the_old_name(db_url: str, tmp_path: Path) -> None:
    table = _applied(db_url, tmp_path, "      - {name: a, type: String, validation: {maxLength: 10}}")
    execute(db_url, f"INSERT INTO {table} (a) VALUES ('0123456789'), ('01234')")
    path = _spec(tmp_path / "v2", "2.0.0", RENAMED)
    plan = _plan(db_url, path)
    assert _violations(plan) == [1]
    _refused(run("apply", str(path), "-d", db_url, "--approve", plan["hash"]))
    assert execute(db_url, f"SELECT a FROM {table} ORDER BY id") == [("0123456789",), ("01234",)]


def test_rename_and_narrow_applies_when_every_value_fits(db_url: str, tmp_path: Path) -> None:
    table = _applied(db_url, tmp_path, "      - {name: a, type: String, validation: {maxLength: 10}}")
    execute(db_url, f"INSERT INTO {table} (a) VALUES ('01234'), (NULL)")
    path = _spec(tmp_path / "v2", "2.0.0", RENAMED)
    plan = _plan(db_url, path)
    assert _violations(plan) == [0]
    outcome = run("apply", str(path), "-d", db_url, "--approve", plan["hash"])
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert execute(db_url, f"SELECT b FROM {table} ORDER BY id") == [("01234",), (None,)]


# --- defect: on SQLite a check naming a column the table lacks counted the name as a string ---


def _renamed_by_hand(url: str, table: str) -> None:
    execute(url, f"ALTER TABLE {table} RENAME COLUMN a TO a_old")


def _count_failed(outcome: Outcome) -> None:
    """The count failed with the database's words (ES402: no column a; exit code 3), never a number."""
    text = outcome.stdout + outcome.stderr
    assert outcome.exit_code == 3, text
    assert "ES402" in text and ("no such column" in text or "does not exist" in text), text
    assert "ES309" not in text, text


def test_a_narrowing_count_of_a_column_the_table_lacks_fails_instead_of_counting(db_url: str, tmp_path: Path) -> None:
    """Before (SQLite): column a renamed by hand, the count read "a" as the string 'a' and found
    0 rows violating maxLength 5; PostgreSQL failed the count. Now both fail it (ES402)."""
    table = _applied(db_url, tmp_path, "      - {name: a, type: String, validation: {maxLength: 10}}")
    execute(db_url, f"INSERT INTO {table} (a) VALUES ('0123456789'), ('01234')")
    _renamed_by_hand(db_url, table)
    path = _spec(tmp_path / "v2", "2.0.0", "      - {name: a, type: String, validation: {maxLength: 5}}")
    _count_failed(run("plan", str(path), "-d", db_url, "-o", "json"))


def test_a_column_dropped_after_the_approval_fails_the_migrations_count_and_changes_nothing(
    db_url: str, tmp_path: Path
) -> None:
    """Before (SQLite): the count under the migration's lock found 0 rows, and the rebuild wrote the
    string 'a' into every row of the new column a."""
    table = _applied(db_url, tmp_path, "      - {name: a, type: String, validation: {maxLength: 10}}")
    execute(db_url, f"INSERT INTO {table} (a) VALUES ('0123456789'), ('01234')")
    path = _spec(tmp_path / "v2", "2.0.0", "      - {name: a, type: String, validation: {maxLength: 5}}")
    plan = _plan(db_url, path)
    assert _violations(plan) == [1]
    execute(db_url, f"ALTER TABLE {table} DROP COLUMN a")
    _count_failed(run("apply", str(path), "-d", db_url, "--approve", plan["hash"]))
    assert execute(db_url, f"SELECT * FROM {table} ORDER BY id") == [(1,), (2,)]


# --- defect: SQLite counted no BigInt value outside Int's range, and never enforced it afterwards ---


def test_bigint_to_int_counts_values_outside_int_on_both_databases(db_url: str, tmp_path: Path) -> None:
    table = _applied(db_url, tmp_path, "      - {name: n, type: BigInt}")
    execute(db_url, f"INSERT INTO {table} (n) VALUES (5000000000), (7), (NULL), (-2147483648)")
    path = _spec(tmp_path / "v2", "2.0.0", "      - {name: n, type: Int}")
    plan = _plan(db_url, path)
    assert _violations(plan) == [1]
    _refused(run("apply", str(path), "-d", db_url, "--approve", plan["hash"]))
    assert [r[0] for r in execute(db_url, f"SELECT n FROM {table} ORDER BY id")] == [5000000000, 7, None, -(2**31)]


def test_int_range_is_enforced_after_bigint_to_int_and_drift_agrees(db_url: str, tmp_path: Path) -> None:
    table = _applied(db_url, tmp_path, "      - {name: n, type: BigInt}")
    execute(db_url, f"INSERT INTO {table} (n) VALUES (7), (2147483647)")
    path = _spec(tmp_path / "v2", "2.0.0", "      - {name: n, type: Int}")
    plan = _plan(db_url, path)
    assert _violations(plan) == [0]
    outcome = run("apply", str(path), "-d", db_url, "--approve", plan["hash"])
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    for value in (9000000000, 2147483648, -2147483649):
        with pytest.raises(sa.exc.DBAPIError):
            execute(db_url, f"INSERT INTO {table} (n) VALUES ({value})")
    execute(db_url, f"INSERT INTO {table} (n) VALUES (-2147483648)")
    drift = run("drift", "-d", db_url)
    assert drift.exit_code == 0, drift.stdout + drift.stderr


def test_a_new_int_field_refuses_values_outside_int_on_both_databases(db_url: str, tmp_path: Path) -> None:
    table = _applied(db_url, tmp_path, "      - {name: n, type: Int}")
    with pytest.raises(sa.exc.DBAPIError):
        execute(db_url, f"INSERT INTO {table} (n) VALUES (9000000000)")
    assert execute(db_url, f"SELECT count(*) FROM {table}") == [(0,)]


def test_drift_names_an_int_column_whose_range_sqlite_does_not_enforce(sqlite_url: str, tmp_path: Path) -> None:
    """A table an older version created has no range CHECK on its Int columns: drift says so."""
    table = _applied(sqlite_url, tmp_path, "      - {name: n, type: Int}")
    [(ddl,)] = execute(sqlite_url, "SELECT sql FROM sqlite_master WHERE name = 'ext_shop__order'")
    older = ddl.replace(" AND (n BETWEEN -2147483648 AND 2147483647)", "").replace(
        ' AND ("n" BETWEEN -2147483648 AND 2147483647)', ""
    )
    assert older != ddl, ddl
    execute(sqlite_url, f"DROP TABLE {table}")
    execute(sqlite_url, older)
    drift = run("drift", "-d", sqlite_url)
    assert drift.exit_code == 1, drift.stdout + drift.stderr
    assert "column order.n" in drift.stdout and "range" in drift.stdout, drift.stdout
