"""Changes that rebuild or retype a table against objects a DBA tied to it by hand.

SQLite's rebuild (create new, copy, drop, rename) only re-creates what the spec knows: every index,
trigger and view SQLite ties to the table that extschema did not make is refused before anything runs
(ES301, naming each), as hand-added columns are. PostgreSQL alters in place and keeps them, but cannot
change the type of a column a view reads: that is refused up front the same way.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import approved_rollback, execute, ext_table, run, sa_url, write_schema

V1 = """
pluginId: shop
version: 1.0.0
enums:
  - {name: state, values: [new, done]}
tables:
  - name: order
    fields:
      - {name: code, type: String}
      - {name: state, type: Enum, enum: state}
    indexes:
      - {fields: [state]}
"""
#: Safe, but SQLite carries it out by rebuilding the table (the enum lives in its CHECK).
V2 = V1.replace("1.0.0", "2.0.0").replace("[new, done]", "[new, done, void]")


def _applied(url: str, tmp_path: Path) -> tuple[str, Path]:
    """V1 applied with two rows; the table's SQL name and V2's file."""
    for name in ("v1", "v2"):
        (tmp_path / name).mkdir()
    outcome = run("apply", str(write_schema(tmp_path / "v1", "shop", V1)), "-d", url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    table = ext_table(url, "shop", "order")
    execute(url, f"INSERT INTO {table} (code, state) VALUES ('A1', 'new'), ('B2', 'done')")
    return table, write_schema(tmp_path / "v2", "shop", V2)


def _refused(url: str, v2: Path, *names: str) -> None:
    """Applying *v2* is refused with ES301 naming each of *names*, and nothing ran."""
    outcome = run("apply", str(v2), "-d", url)
    assert outcome.exit_code == 1, outcome.stdout + outcome.stderr
    assert "ES301" in outcome.stderr and "Traceback" not in outcome.stderr, outcome.stderr
    for name in names:
        assert name in outcome.stderr, outcome.stderr
    history = run("history", "shop", "-d", url, "-o", "json").items()
    assert [(m["version"], m["status"]) for m in history] == [("1.0.0", "executed")]


def _objects(url: str, kind: str) -> set[str]:
    found = execute(url, f"SELECT name FROM sqlite_master WHERE type = '{kind}' AND name NOT LIKE 'sqlite_%'")
    return {name for (name,) in found}


def test_a_unique_index_added_by_hand_is_never_dropped_by_a_safe_change(db_url: str, tmp_path: Path) -> None:
    """A safe 2.0.0 (an enum value added) rebuilt the table without the DBA's UNIQUE index: exit 0,
    drift in sync, duplicates accepted. Now it is refused, the index named, and it keeps working."""
    table, v2 = _applied(db_url, tmp_path)
    execute(db_url, f"CREATE UNIQUE INDEX dba_code_uq ON {table} (code)")
    execute(db_url, f"CREATE INDEX dba_done ON {table} (code) WHERE state = 'done'")  # partial
    drifted = run("drift", "shop", "-d", db_url, "-o", "json").items()[0]["differences"]
    assert {d["object"] for d in drifted} == {"index dba_code_uq", "index dba_done"}, drifted
    if db_url.startswith("sqlite"):
        _refused(db_url, v2, "index dba_code_uq", "index dba_done")
        assert {"dba_code_uq", "dba_done"} <= _objects(db_url, "index")
    else:  # altered in place
        outcome = run("apply", str(v2), "-d", db_url)
        assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    with pytest.raises(sa.exc.IntegrityError):
        execute(db_url, f"INSERT INTO {table} (code, state) VALUES ('A1', 'new')")
    assert execute(db_url, f"SELECT count(*) FROM {table}") == [(2,)]


def test_the_refusal_names_only_what_extschema_did_not_make(sqlite_url: str, tmp_path: Path) -> None:
    """The spec's own indexes (a declared one here) are re-created by the rebuild, not reported; once the
    DBA drops what was added by hand, the same change runs."""
    table, v2 = _applied(sqlite_url, tmp_path)
    execute(sqlite_url, f"CREATE UNIQUE INDEX dba_code_uq ON {table} (code)")
    outcome = run("apply", str(v2), "-d", sqlite_url)
    assert outcome.exit_code == 1 and "dba_code_uq" in outcome.stderr, outcome.stderr
    assert "_state_idx" not in outcome.stderr, outcome.stderr
    execute(sqlite_url, "DROP INDEX dba_code_uq")
    outcome = run("apply", str(v2), "-d", sqlite_url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert {n for n in _objects(sqlite_url, "index") if n.startswith(("ext_shop", "dba"))} == {
        "ext_shop__order_state_idx"
    }
    assert run("drift", "shop", "-d", sqlite_url).exit_code == 0


def test_a_view_on_the_table_is_refused_up_front_not_left_to_fail(sqlite_url: str, tmp_path: Path) -> None:
    """A DBA's view on the table made the rebuild fail half way with SQLite's own message (ES402: error
    in view dba_v: no such table), exit 3. Now ES301 names the view before anything runs."""
    table, v2 = _applied(sqlite_url, tmp_path)
    execute(sqlite_url, f"CREATE VIEW dba_v AS SELECT code FROM {table} WHERE state = 'done'")
    drifted = run("drift", "shop", "-d", sqlite_url, "-o", "json").items()[0]["differences"]
    assert [d["object"] for d in drifted] == ["view dba_v"], drifted
    _refused(sqlite_url, v2, "view dba_v")
    assert execute(sqlite_url, "SELECT code FROM dba_v") == [("B2",)]


def test_a_trigger_elsewhere_writing_to_the_table_is_refused_too(sqlite_url: str, tmp_path: Path) -> None:
    """A trigger on another table that writes into the plugin table is tied to it the same way (the
    rename step fails on it): named, as the table's own triggers are."""
    table, v2 = _applied(sqlite_url, tmp_path)
    execute(sqlite_url, "CREATE TABLE app_event (code TEXT)")
    execute(
        sqlite_url,
        f"CREATE TRIGGER dba_copy AFTER INSERT ON app_event BEGIN INSERT INTO {table} (code) VALUES (new.code); END",
    )
    _refused(sqlite_url, v2, "trigger dba_copy")
    assert _objects(sqlite_url, "trigger") == {"dba_copy"}


def test_a_rollback_that_rebuilds_is_refused_the_same_way(sqlite_url: str, tmp_path: Path) -> None:
    """Undoing the enum value rebuilds the table again: an index and a view added since are named."""
    table, v2 = _applied(sqlite_url, tmp_path)
    assert run("apply", str(v2), "-d", sqlite_url).exit_code == 0
    execute(sqlite_url, f"CREATE UNIQUE INDEX dba_code_uq ON {table} (code)")
    execute(sqlite_url, f"CREATE VIEW dba_v AS SELECT code FROM {table}")
    outcome = approved_rollback(sqlite_url, "shop")
    assert outcome.exit_code == 1, outcome.stdout + outcome.stderr
    said = outcome.stdout + outcome.stderr
    assert "ES301" in said and "index dba_code_uq" in said and "view dba_v" in said, said
    assert {"dba_code_uq", "dba_v"} <= _objects(sqlite_url, "index") | _objects(sqlite_url, "view")
    history = run("history", "shop", "-d", sqlite_url, "-o", "json").items()
    assert [m["status"] for m in history] == ["executed", "executed"]


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("before", "after"),
    [("{name: qty, type: Int}", "{name: qty, type: BigInt}"), ("[new, done]", "[new]")],
    ids=["type-change", "enum-value-removed"],
)
def test_postgresql_refuses_to_retype_a_column_a_view_reads(
    pg_url: str, tmp_path: Path, before: str, after: str
) -> None:
    """ALTER COLUMN ... TYPE (a type change, or an enum losing a value: a new type swapped in) failed
    with the database's own message (ES402: cannot alter type of a column used by a view or rule), exit 3.
    Now ES301 names the view before anything runs."""
    v1 = V1.replace("      - {name: state", "      - {name: qty, type: Int}\n      - {name: state")
    for name in ("v1", "v2"):
        (tmp_path / name).mkdir()
    assert run("apply", str(write_schema(tmp_path / "v1", "shop", v1)), "-d", pg_url).exit_code == 0
    table = ext_table(pg_url, "shop", "order")
    execute(pg_url, f"INSERT INTO {table} (code, qty, state) VALUES ('A1', 1, 'new')")
    execute(pg_url, f"CREATE VIEW dba_v AS SELECT qty, state FROM {table}")
    v2 = write_schema(tmp_path / "v2", "shop", v1.replace("1.0.0", "2.0.0").replace(before, after))
    plan = run("plan", str(v2), "-d", pg_url, "-o", "json").item()
    outcome = run("apply", str(v2), "-d", pg_url, "--approve", plan["hash"])
    assert outcome.exit_code == 1, outcome.stdout + outcome.stderr
    assert "ES301" in outcome.stderr and "view public.dba_v" in outcome.stderr, outcome.stderr
    assert execute(pg_url, "SELECT qty, state FROM dba_v") == [(1, "new")]
    execute(pg_url, "DROP VIEW dba_v")
    outcome = run("apply", str(v2), "-d", pg_url, "--approve", plan["hash"])
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr


@pytest.mark.postgres
def test_postgresql_refuses_to_swap_an_enum_type_other_objects_use(pg_url: str, tmp_path: Path) -> None:
    """An enum losing a value is a new type swapped in: a partial index comparing the column with a value,
    or another table's column of the type, made it fail with the database's message (ES402: operator does
    not exist: ext_shop.state = ext_shop.state__old). Now ES301 names each; a plain index on the column is
    converted with it and not in the way."""
    table, _ = _applied(pg_url, tmp_path)
    execute(pg_url, f"CREATE INDEX dba_done ON {table} (code) WHERE state = 'done'")
    execute(pg_url, f"CREATE INDEX dba_state ON {table} (state)")
    execute(pg_url, "CREATE TABLE app_log (s ext_shop.state)")
    (tmp_path / "v3").mkdir()
    v3 = write_schema(tmp_path / "v3", "shop", V1.replace("1.0.0", "3.0.0").replace("[new, done]", "[new]"))
    execute(pg_url, f"DELETE FROM {table} WHERE state = 'done'")
    plan = run("plan", str(v3), "-d", pg_url, "-o", "json").item()
    outcome = run("apply", str(v3), "-d", pg_url, "--approve", plan["hash"])
    assert outcome.exit_code == 1, outcome.stdout + outcome.stderr
    assert "ES301" in outcome.stderr and "index ext_shop.dba_done" in outcome.stderr, outcome.stderr
    assert "column s of table app_log" in outcome.stderr and "dba_state" not in outcome.stderr, outcome.stderr
    execute(pg_url, "DROP INDEX ext_shop.dba_done")
    execute(pg_url, "DROP TABLE app_log")
    outcome = run("apply", str(v3), "-d", pg_url, "--approve", plan["hash"])
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr


def _columns(url: str, table: str) -> list[tuple[str, ...]]:
    """The rows, by id; each as its columns in name order (a column re-added comes last in SELECT *)."""
    engine = sa.create_engine(sa_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id").mappings().all()
    finally:
        engine.dispose()
    return [tuple(str(row[k]) for k in sorted(row)) for row in rows]


@pytest.mark.parametrize(
    ("v2", "pg_fails"),
    [
        (V2, False),  # an enum value added: the rebuild copies code too; PostgreSQL leaves it alone
        (V1.replace("1.0.0", "2.0.0").replace("type: String}", "type: Text}"), True),  # code itself retyped
    ],
    ids=["other-column", "widened-column"],
)
def test_a_column_dropped_by_hand_is_never_copied_as_its_name(
    db_url: str, tmp_path: Path, v2: str, pg_fails: bool
) -> None:
    """SQLite reads a double-quoted name naming no column as a string: a rebuild of a table whose column
    was dropped by hand stored the column's name in every row, exit 0. Now the rebuild's preflight
    refuses (ES301, naming table.column and the repair) before anything runs; PostgreSQL alters in
    place: it never writes the column, or fails the change (ES402, nothing applied)."""
    table, _ = _applied(db_url, tmp_path)
    path = write_schema(tmp_path / "v2", "shop", v2)
    gone = "code"
    execute(db_url, f"ALTER TABLE {table} DROP COLUMN {gone}")
    before = _columns(db_url, table)
    if db_url.startswith("sqlite"):
        _refused(db_url, path, f"order.{gone}", "--repair")
    else:
        outcome = run("apply", str(path), "-d", db_url)
        said = outcome.stdout + outcome.stderr
        assert (outcome.exit_code != 0) is pg_fails, said
        if pg_fails:  # ALTER COLUMN names a column that is gone
            assert outcome.exit_code == 3 and "ES402" in said and f"{gone} does not exist" in said, said
            history = run("history", "shop", "-d", db_url, "-o", "json").items()
            assert [m["status"] for m in history if m["version"] == "2.0.0"] in ([], ["failed"]), history
    assert _columns(db_url, table) == before
    assert all(gone not in row for row in _columns(db_url, table))


def test_a_rebuilding_rollback_refuses_a_column_dropped_by_hand(sqlite_url: str, tmp_path: Path) -> None:
    """Undoing the enum value rebuilds the table again: a column dropped since is named, nothing runs."""
    table, v2 = _applied(sqlite_url, tmp_path)
    assert run("apply", str(v2), "-d", sqlite_url).exit_code == 0
    execute(sqlite_url, f"ALTER TABLE {table} DROP COLUMN code")
    outcome = approved_rollback(sqlite_url, "shop")
    said = outcome.stdout + outcome.stderr
    assert outcome.exit_code == 1 and "ES301" in said and "order.code" in said, said
    history = run("history", "shop", "-d", sqlite_url, "-o", "json").items()
    assert [m["status"] for m in history] == ["executed", "executed"]
    assert _columns(sqlite_url, table) == [("1", "new"), ("2", "done")]
    # The repair the message names puts the column back (empty): then the rollback runs.
    assert run("drift", "shop", "-d", sqlite_url, "--repair").exit_code == 0
    outcome = approved_rollback(sqlite_url, "shop")
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert _columns(sqlite_url, table) == [("None", "1", "new"), ("None", "2", "done")]
