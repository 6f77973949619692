"""The database itself rejects rows that break a rule, an enum, a required field, a unique or an FK."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import execute, ext_table, load_core, run, write_schema

SPEC = """
pluginId: rules
version: 1.0.0
enums:
  - {name: level, values: [low, high]}
tables:
  - name: item
    fields:
      - {name: title, type: String, required: true, validation: {minLength: 2, maxLength: 10}}
      - {name: notes, type: Text, validation: {maxLength: 5}}
      - {name: code, type: String, unique: true, validation: {pattern: '^[A-Z]{3}-[0-9]+$'}}
      - {name: score, type: Decimal, precision: 6, scale: 2, validation: {min: 0, max: 100}}
      - {name: qty, type: Int, validation: {min: 1, max: 9}}
      - {name: level, type: Enum, enum: level, default: low, required: true}
      - {name: flag, type: Boolean, default: false}
      - {name: ratio, type: Float, validation: {min: 0.5}}
    uniqueConstraints: [{fields: [title, level]}]
relationships:
  - {source: item, sourceField: work_order_id, target: core.work_orders, type: ManyToOne, onDelete: Cascade}
"""

GOOD = {
    "title": "ok",
    "notes": "n",
    "code": "ABC-1",
    "score": 50,
    "qty": 5,
    "level": "low",
    "flag": False,
    "ratio": 1.0,
    "work_order_id": 1,
}

VIOLATIONS = {
    "minLength": {"title": "a"},
    "maxLength (varchar)": {"title": "x" * 11},
    "maxLength (text)": {"notes": "toolong"},
    "pattern": {"code": "abc-1"},
    "min": {"score": -1},
    "max": {"score": 100.5},
    "int min": {"qty": 0},
    "int max": {"qty": 10},
    "float min": {"ratio": 0.1},
    "enum": {"level": "medium"},
    "required": {"title": None},
    "required enum": {"level": None},
    "foreign key": {"work_order_id": 999},
}


@pytest.fixture
def rules_db(db_url: str, tmp_path: Path) -> str:
    load_core(db_url)
    execute(db_url, "INSERT INTO work_orders (id, title) VALUES (1, 'fix pump')")
    path = write_schema(tmp_path, "rules", SPEC)
    outcome = run("apply", str(path), "-d", db_url)
    assert outcome.exit_code == 0, outcome.stderr
    return db_url


def test_a_good_row_is_accepted(rules_db: str) -> None:
    _insert_with_engine(rules_db, GOOD)
    assert execute(rules_db, f"SELECT count(*) FROM {ext_table(rules_db, 'rules', 'item')}") == [(1,)]


@pytest.mark.parametrize("rule", list(VIOLATIONS))
def test_violations_are_rejected_by_the_database(rules_db: str, rule: str) -> None:
    # IntegrityError for constraints; DataError where PostgreSQL's type itself refuses (varchar(n), enum).
    with pytest.raises((sa.exc.IntegrityError, sa.exc.DataError)):
        _insert_with_engine(rules_db, {**GOOD, **VIOLATIONS[rule]})


def test_unique_field_and_unique_constraint(rules_db: str) -> None:
    _insert_with_engine(rules_db, GOOD)
    with pytest.raises(sa.exc.IntegrityError):
        _insert_with_engine(rules_db, {**GOOD, "title": "other"})  # same code
    with pytest.raises(sa.exc.IntegrityError):
        _insert_with_engine(rules_db, {**GOOD, "code": "XYZ-2"})  # same (title, level)


def test_cascade_delete_follows_the_relationship(rules_db: str) -> None:
    _insert_with_engine(rules_db, GOOD)
    _execute_with_engine(rules_db, "DELETE FROM work_orders WHERE id = 1")
    assert execute(rules_db, f"SELECT count(*) FROM {ext_table(rules_db, 'rules', 'item')}") == [(0,)]


def test_sqlite_type_checks_reject_wrong_storage_classes(sqlite_url: str, tmp_path: Path) -> None:
    load_core(sqlite_url)
    assert run("apply", str(write_schema(tmp_path, "rules", SPEC)), "-d", sqlite_url).exit_code == 0
    with pytest.raises(sa.exc.IntegrityError):
        _insert_with_engine(sqlite_url, {**GOOD, "qty": "five", "work_order_id": None})


def _extschema_engine(url: str) -> sa.Engine:
    from extschema.engine import Engine

    return Engine(url).sa_engine


def _insert_with_engine(url: str, values: dict[str, object]) -> None:
    columns = ", ".join(values)
    params = ", ".join(f":{k}" for k in values)
    _execute_with_engine(url, f"INSERT INTO {ext_table(url, 'rules', 'item')} ({columns}) VALUES ({params})", values)


def _execute_with_engine(url: str, sql: str, params: dict[str, object] | None = None) -> None:
    """Through extschema's own connection setup (SQLite: foreign keys on)."""
    engine = _extschema_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql), params or {})
    finally:
        engine.dispose()
