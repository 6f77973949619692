"""SQLite tables created before extschema kept Int within its range (no range CHECK): the upgrade path.

`drift --repair` (and driftPolicy: Repair, the same engine code) adds the CHECK through the table
rebuild, counting values outside the range first; any other rebuild of such a table counts them too
(ES309, not SQLite's raw "CHECK constraint failed"); an unchanged apply says how to fix it. The old
tables are made as the previous version made them: the same DDL, without the range.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from extschema import conditions
from extschema.controller import database as controller_database
from extschema.engine import Engine
from tests.helpers import execute, run, write_schema

SPEC = """
pluginId: shop
version: {version}
tables:
  - name: order
    fields:
      - {{name: n, type: Int}}
      - {{name: m, type: Int, required: true, default: 0, unique: true, validation: {{min: 0}}}}
{more}
"""
NOTE = "      - {name: note, type: String}"
TABLE = "ext_shop__order"
RANGE = "BETWEEN -2147483648 AND 2147483647"


def _spec(directory: Path, version: str = "1.0.0", more: str = NOTE) -> Path:
    directory.mkdir(exist_ok=True)
    return write_schema(directory, "shop", SPEC.format(version=version, more=more))


def _path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def _ddl(url: str) -> str:
    [(sql,)] = execute(url, f"SELECT sql FROM sqlite_master WHERE name = '{TABLE}'")
    return str(sql)


def _older(ddl: str) -> str:
    """*ddl* as the version before the Int range CHECK wrote it (a lone condition is not parenthesised)."""
    lone = re.compile(r"""CHECK \(\((typeof\("(\w+)"\) IN \('integer', 'null'\))\) AND \("\2" """ + RANGE + r"""\)\)""")
    older = lone.sub(r"CHECK (\1)", ddl)
    older = re.sub(r""" AND \("\w+" """ + RANGE + r"\)", "", older)
    assert RANGE not in older, older
    return older


def _made_before_the_range(url: str, rows: list[tuple[int | None, int, str | None]]) -> str:
    """Rebuild the applied table by hand with the DDL the previous version created, holding *rows*
    (which that table accepts: any 64-bit integer); returns that DDL."""
    older = _older(_ddl(url))
    connection = sqlite3.connect(_path(url), isolation_level=None)
    try:
        indexes = [sql for (sql,) in connection.execute(f"SELECT sql FROM sqlite_master WHERE tbl_name = '{TABLE}' "
                                                        "AND type = 'index' AND sql IS NOT NULL")]  # fmt: skip
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(f'DROP TABLE "{TABLE}"')
        connection.execute(older)
        for sql in indexes:
            connection.execute(sql)
        connection.executemany(f'INSERT INTO "{TABLE}" (n, m, note) VALUES (?, ?, ?)', rows)
        connection.execute("COMMIT")
    finally:
        connection.close()
    assert _ddl(url) == older
    return older


def _history(url: str) -> list[dict[str, object]]:
    outcome = run("history", "shop", "-d", url, "-o", "json")
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    migrations: list[dict[str, object]] = outcome.items()
    return migrations


def _rows(url: str) -> list[tuple[object, ...]]:
    return [tuple(r) for r in execute(url, f'SELECT id, n, m, note FROM "{TABLE}" ORDER BY id')]


ROWS_IN_RANGE: list[tuple[int | None, int, str | None]] = [(7, 1, "a"), (2147483647, 2, None), (None, 3, "c")]
ROWS_OUT_OF_RANGE: list[tuple[int | None, int, str | None]] = [
    (7, 1, "a"), (5000000000, 2, None), (-3000000000, 3, "c"), (-2147483648, 4, None),
]  # fmt: skip


@pytest.fixture
def old_table(sqlite_url: str, tmp_path: Path) -> str:
    outcome = run("apply", str(_spec(tmp_path / "v1")), "-d", sqlite_url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    return sqlite_url


def test_drift_says_how_to_add_the_missing_range(old_table: str) -> None:
    _made_before_the_range(old_table, ROWS_IN_RANGE)
    outcome = run("drift", "shop", "-d", old_table, "-o", "json")
    assert outcome.exit_code == 1, outcome.stdout + outcome.stderr
    differences = outcome.item()["differences"]
    assert [(d["kind"], d["object"]) for d in differences] == [
        ("changed", "column order.n"),
        ("changed", "column order.m"),
    ]
    for difference in differences:
        assert "extschema drift shop --repair" in difference["detail"], difference


def test_repair_adds_the_range_keeps_rows_and_indexes_and_records_a_correct_rollback(old_table: str) -> None:
    older = _made_before_the_range(old_table, ROWS_IN_RANGE)
    before = _rows(old_table)
    outcome = run("drift", "shop", "--repair", "-d", old_table)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert "repaired:" in outcome.stdout and "order.n" in outcome.stdout, outcome.stdout
    assert RANGE in _ddl(old_table)
    assert _rows(old_table) == before
    assert execute(old_table, f"SELECT name FROM sqlite_master WHERE tbl_name = '{TABLE}' AND type = 'index'") == [
        ("ext_shop__order_m_key",)
    ]
    with pytest.raises(Exception, match="CHECK constraint failed"):
        execute(old_table, f'INSERT INTO "{TABLE}" (n, m) VALUES (9000000000, 9)')
    assert run("drift", "shop", "-d", old_table).exit_code == 0
    history = _history(old_table)
    assert [(m["kind"], m["status"]) for m in history] == [("apply", "executed"), ("repair", "executed")]
    # A second repair finds nothing to do: no migration.
    again = run("drift", "shop", "--repair", "-d", old_table)
    assert again.exit_code == 0 and "repaired:" not in again.stdout, again.stdout
    assert len(_history(old_table)) == 2
    # The recorded rollback brings the table back exactly as it was, rows and index included.
    [(statements,)] = execute(old_table, "SELECT rollback_statements FROM extension_migrations WHERE kind = 'repair'")
    connection = sqlite3.connect(_path(old_table), isolation_level=None)
    try:
        connection.execute("PRAGMA foreign_keys = OFF")
        connection.execute("BEGIN IMMEDIATE")
        for statement in json.loads(statements):
            connection.execute(statement)
        connection.execute("COMMIT")
    finally:
        connection.close()
    # (SQLite's RENAME TO, the rebuild's last step, writes the table's name quoted)
    assert _ddl(old_table) == older.replace(TABLE, f'"{TABLE}"', 1)
    assert _rows(old_table) == before
    assert ("ext_shop__order_m_key",) in execute(old_table, "SELECT name FROM sqlite_master WHERE type = 'index'")


def test_repair_refuses_values_outside_the_range_and_changes_nothing(old_table: str) -> None:
    older = _made_before_the_range(old_table, ROWS_OUT_OF_RANGE)
    before = _rows(old_table)
    outcome = run("drift", "shop", "--repair", "-d", old_table)
    text = outcome.stdout + outcome.stderr
    assert outcome.exit_code == 1, text
    assert "ES309" in text and "ES402" not in text, text
    assert "order.n" in text and "2 existing row(s)" in text, text
    assert _ddl(old_table) == older
    assert _rows(old_table) == before
    assert [m["kind"] for m in _history(old_table)] == ["apply"]


def test_the_operators_repair_adds_the_range(old_table: str) -> None:
    """driftPolicy: Repair runs controller.database.drift with repair on: the same engine repair."""
    _made_before_the_range(old_table, ROWS_IN_RANGE)
    engine = Engine(old_table)
    try:
        differences, repaired, refused = controller_database.drift(engine, "shop", repair=True)
        assert refused == []
    finally:
        engine.close()
    assert differences == []
    assert any("order.n" in line for line in repaired), repaired
    assert RANGE in _ddl(old_table)


def test_the_operators_refused_repair_shows_in_insync(old_table: str) -> None:
    """With values outside the range the operator's repair is refused like the CLI's, nothing changes,
    and InSync says why (not only a log line)."""
    older = _made_before_the_range(old_table, ROWS_OUT_OF_RANGE)
    engine = Engine(old_table)
    try:
        differences, repaired, refused = controller_database.drift(engine, "shop", repair=True)
    finally:
        engine.close()
    assert repaired == [] and len(differences) == 2, differences
    assert len(refused) == 1 and "ES309" in refused[0] and "order.n" in refused[0], refused
    sync = conditions.sync_of(differences, repaired, refused)
    assert sync.reason == "Drifted" and "2 differences" in sync.message, sync.message
    assert "repair refused" in sync.message and "2 existing row(s)" in sync.message, sync.message
    assert _ddl(old_table) == older


def test_a_rebuild_of_an_old_table_counts_values_outside_the_range(old_table: str, tmp_path: Path) -> None:
    """Dropping a field rebuilds the table, which adds the range CHECK: out-of-range values are
    counted first and refused (ES309 naming the field and the count), never SQLite's raw failure."""
    older = _made_before_the_range(old_table, ROWS_OUT_OF_RANGE)
    before = _rows(old_table)
    path = _spec(tmp_path / "v2", "2.0.0", more="")
    plan = run("plan", str(path), "-d", old_table, "-o", "json")
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    outcome = run("apply", str(path), "-d", old_table, "--approve", plan.item()["hash"])
    text = outcome.stdout + outcome.stderr
    assert outcome.exit_code == 1, text
    assert "ES309" in text and "ES402" not in text, text
    assert "order.n" in text and "2 existing row(s)" in text, text
    assert _ddl(old_table) == older
    assert _rows(old_table) == before


def test_a_rebuild_of_an_old_table_with_values_in_range_adds_the_range(old_table: str, tmp_path: Path) -> None:
    _made_before_the_range(old_table, ROWS_IN_RANGE)
    path = _spec(tmp_path / "v2", "2.0.0", more="")
    plan = run("plan", str(path), "-d", old_table, "-o", "json")
    outcome = run("apply", str(path), "-d", old_table, "--approve", plan.item()["hash"])
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert RANGE in _ddl(old_table)
    assert run("drift", "shop", "-d", old_table).exit_code == 0


def test_an_unchanged_apply_warns_how_to_add_the_range(old_table: str, tmp_path: Path) -> None:
    _made_before_the_range(old_table, ROWS_IN_RANGE)
    outcome = run("apply", str(_spec(tmp_path / "v1")), "-d", old_table, "-o", "json")
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    [warning] = [w for r in outcome.items() for w in r.get("warnings", [])]
    assert warning["code"] == "ES503"
    message = warning["message"]
    assert "column order.n" in message and "Int's range" in message, message
    assert "extschema drift shop --repair" in message, message
    assert "only reported" not in message, message


def test_int_columns_are_in_sync_and_repair_does_nothing(db_url: str, tmp_path: Path) -> None:
    """Tables this version creates (and PostgreSQL's INTEGER, which enforces the range itself): nothing to repair."""
    outcome = run("apply", str(_spec(tmp_path / "v1")), "-d", db_url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    repaired = run("drift", "shop", "--repair", "-d", db_url)
    assert repaired.exit_code == 0 and "repaired:" not in repaired.stdout, repaired.stdout
    assert [m["kind"] for m in _history(db_url)] == ["apply"]


def test_a_rebuild_after_a_rename_counts_the_values_under_the_old_name(old_table: str, tmp_path: Path) -> None:
    """n renamed to k and note dropped in one version: the count runs before the rename, on n."""
    older = _made_before_the_range(old_table, ROWS_OUT_OF_RANGE)
    renamed = SPEC.replace("{{name: n, type: Int}}", "{{name: k, type: Int, renamedFrom: n}}")
    directory = tmp_path / "v2"
    directory.mkdir()
    path = write_schema(directory, "shop", renamed.format(version="2.0.0", more=""))
    plan = run("plan", str(path), "-d", old_table, "-o", "json")
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    outcome = run("apply", str(path), "-d", old_table, "--approve", plan.item()["hash"])
    text = outcome.stdout + outcome.stderr
    assert outcome.exit_code == 1, text
    assert "ES309" in text and "order.n" in text and "2 existing row(s)" in text, text
    assert _ddl(old_table) == older


def test_a_field_made_bigint_in_the_same_plan_as_an_earlier_rebuild_is_not_counted(
    old_table: str, tmp_path: Path
) -> None:
    """m's rule widened (a rebuild), then n made BigInt and note dropped: one rebuild (SQLite), into
    the final shape, where n has no Int range to break; its values outside the range are kept."""
    _made_before_the_range(old_table, ROWS_OUT_OF_RANGE)
    before = _rows(old_table)
    fields = (
        "      - {{name: m, type: Int, required: true, default: 0, unique: true, validation: {{min: -5}}}}\n"
        "      - {{name: n, type: BigInt}}\n"
    )
    directory = tmp_path / "v2"
    directory.mkdir()
    text = "pluginId: shop\nversion: 2.0.0\ntables:\n  - name: order\n    fields:\n" + fields.format()
    path = write_schema(directory, "shop", text)
    plan = run("plan", str(path), "-d", old_table, "-o", "json")
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    outcome = run("apply", str(path), "-d", old_table, "--approve", plan.item()["hash"])
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    assert [tuple(r) for r in execute(old_table, f'SELECT id, n, m FROM "{TABLE}" ORDER BY id')] == [
        r[:3] for r in before
    ]
    assert RANGE in _ddl(old_table)  # m's, still Int


def test_repair_of_an_old_table_is_refused_while_a_hand_made_index_exists(old_table: str) -> None:
    """The repair rebuilds the table: what was made on it outside extschema is refused (ES301), as any rebuild."""
    _made_before_the_range(old_table, ROWS_IN_RANGE)
    execute(old_table, f'CREATE INDEX dba_n ON "{TABLE}" (n)')
    older = _ddl(old_table)
    outcome = run("drift", "shop", "--repair", "-d", old_table)
    text = outcome.stdout + outcome.stderr
    assert outcome.exit_code == 1 and "ES301" in text and "dba_n" in text, text
    assert _ddl(old_table) == older
    assert [m["kind"] for m in _history(old_table)] == ["apply"]


def test_a_renamed_int_field_keeps_its_range_and_drift_agrees(db_url: str, tmp_path: Path) -> None:
    """SQLite renames a column in place, its CHECK keeping its old name: drift finds the range all the same."""
    outcome = run("apply", str(_spec(tmp_path / "v1")), "-d", db_url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    renamed = SPEC.replace("{{name: n, type: Int}}", "{{name: k, type: Int, renamedFrom: n}}")
    directory = tmp_path / "v2"
    directory.mkdir()
    path = write_schema(directory, "shop", renamed.format(version="2.0.0", more=NOTE))
    outcome = run("apply", str(path), "-d", db_url)
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr
    drift = run("drift", "shop", "-d", db_url)
    assert drift.exit_code == 0, drift.stdout + drift.stderr
