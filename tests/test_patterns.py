"""Portable patterns mean the same in the validator, PostgreSQL and SQLite, and never hang anything."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import psycopg
import pytest

from extschema import model, portable_regex
from extschema.validation import validate
from tests.helpers import run, write_schema

# --- Shorthand classes ---------------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "spelled"), [(r"^\d+$", "[0-9]"), (r"\w", "[A-Za-z0-9_]"), (r"a\sb", "[ ]")])
def test_shorthand_classes_are_refused_with_the_ascii_spelling(pattern: str, spelled: str) -> None:
    reason = portable_regex.is_portable_pattern(pattern)
    assert reason is not None and "beyond ASCII" in reason and spelled in reason, reason


def test_shorthand_inside_a_class_is_refused_too() -> None:
    reason = portable_regex.is_portable_pattern(r"[\d_]")
    assert reason is not None and "without the outer brackets" in reason


# --- Catastrophic backtracking and complexity ----------------------------------------------------


@pytest.mark.timeout(10)
def test_catastrophic_backtracking_pattern_returns_promptly() -> None:
    # Python's backtracking re needs about 2**40 steps here; RE2 is linear in the value.
    assert portable_regex.is_portable_pattern("(a+)+$") is None
    assert portable_regex.search("(a+)+$", "a" * 40 + "b") is False
    assert portable_regex.search("^(a|aa)+$", "a" * 5000 + "b") is False
    assert portable_regex.search("(a+)+$", "a" * 40) is True


#: Each of these makes PostgreSQL 15 fail with "invalid regular expression: regular expression is
#: too complex" (checked against the real server below); validation refuses them without a database.
TOO_COMPLEX = ["(a{1,255}){1,255}", "(a|b){0,255}" * 70, "(a{1,220}){1,220}"]
#: These fail the same way, or compile for seconds (so every new session's first insert waits), on
#: PostgreSQL 15; too slow to check against the server in the suite.
SLOW_ON_POSTGRESQL = ["(a?){0,250}" * 7, "a{0,255}" * 100, "(a{0,36}){0,255}", "(a|b?){0,100}" * 6]


@pytest.mark.parametrize("pattern", TOO_COMPLEX + SLOW_ON_POSTGRESQL, ids=lambda p: p[:24])
def test_patterns_postgresql_cannot_compile_are_refused_at_validate_time(pattern: str) -> None:
    reason = portable_regex.is_portable_pattern(pattern)
    assert reason is not None and ("unrolls" in reason or "empty string" in reason or "too complex" in reason)
    spec = model.parse_spec({"pluginId": "p", "version": "1.0.0", "tables": [_table(pattern)]})
    assert [(p.code, p.path) for p in validate(spec)] == [("ES123", "spec.tables[0].fields[0].validation.pattern")]


def test_expanded_size_counts_every_copy() -> None:
    assert portable_regex.expanded_size(portable_regex.parse("abc")) == 3
    assert portable_regex.expanded_size(portable_regex.parse("a{3}")) == 3
    assert portable_regex.expanded_size(portable_regex.parse("(ab){2,4}")) == 2 * 4 + 2
    assert portable_regex.expanded_size(portable_regex.parse("a|b")) == 2 + 2
    assert portable_regex.is_portable_pattern("a{0,255}" * 3) is None  # 1530 positions
    assert portable_regex.is_portable_pattern("a{0,255}" * 4) is not None  # 2040 > MAX_PATTERN_SIZE


@pytest.mark.postgres
def test_the_bound_matches_postgresql(pg_admin_url: str) -> None:
    """Refused patterns really fail on PostgreSQL; generated accepted ones all compile there."""
    accepted = [p for p in _generated_patterns(random.Random(7), 400) if portable_regex.is_portable_pattern(p) is None]
    assert len(accepted) > 100
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute("SET statement_timeout = '5s'")
        for pattern in TOO_COMPLEX:
            with pytest.raises(psycopg.errors.InvalidRegularExpression, match="too complex"):
                conn.execute("SELECT 'x' ~ %s", (pattern,))
        for pattern in accepted:
            conn.execute("SELECT 'x' ~ %s", (pattern,))


def _generated_patterns(rnd: random.Random, count: int) -> list[str]:
    atoms = ["a", "b", ".", "[a-z]", "[^x]", "ab", "a?", "b*", "(a|bc)", "(x[0-9])"]

    def unit() -> str:
        atom = rnd.choice(atoms)
        low = rnd.choice([0, 1, rnd.randint(0, 255)])
        high = rnd.choice([low, rnd.randint(low, 255), None])
        counted = f"{{{low},}}" if high is None else f"{{{low},{high}}}"
        return atom + rnd.choice(["", "*", "+", "?", f"{{{low}}}", counted])

    found = []
    for _ in range(count):
        pattern = "".join(unit() for _ in range(rnd.randint(1, 5)))
        if rnd.random() < 0.5:
            pattern = f"({pattern}){{{rnd.randint(1, 40)}}}" * rnd.randint(1, 6)
        found.append(pattern)
    return found


# --- Classes PostgreSQL reads differently ------------------------------------------------------


@pytest.mark.parametrize("pattern", ["^[a-c-e]$", "[a-a-c]", "x[0-9-z]"])
def test_a_dash_after_a_range_is_refused_at_validate_time(db_url: str, tmp_path: Path, pattern: str) -> None:
    """Python reads ``[a-c-e]`` as a-c, '-' and 'e'; PostgreSQL refuses it ("invalid character range")."""
    assert portable_regex.is_portable_pattern("[a-c-]") is None  # a trailing dash is a member everywhere
    reason = portable_regex.is_portable_pattern(pattern)
    assert reason is not None and "after the range" in reason, reason
    path = write_schema(tmp_path, "pat", f"pluginId: pat\nversion: 1.0.0\ntables: [{_table_yaml(pattern)}]")
    outcome = run("apply", str(path), "-d", db_url)
    assert outcome.exit_code != 0 and "ES108" in outcome.stderr, outcome.stderr


# --- Both databases: the validator and the database accept the same values --------------------

VALUES = ["3", "12", "\u0663", "x", "3a", ""]


@pytest.mark.parametrize("pattern", [r"^\d+$", r"^\w+$", "^[0-9]+$", "^[0-9]$", "^[0-9]{2}$", "[0-9]"])
def test_database_and_validator_agree_on_pattern_values(db_url: str, tmp_path: Path, pattern: str) -> None:
    """A pattern the validator accepts must accept/refuse the same values in the database.

    Before this change ``\\d`` was accepted: the validator (Python, Unicode) said the Arabic-Indic
    digit matched ``^\\d+$`` while PostgreSQL refused the row. The rows are written by a plain
    client (``sqlite3`` with nothing registered, or psycopg): SQLAlchemy's SQLite driver registers
    a REGEXP function of its own, which would hide a CHECK that other clients cannot evaluate.
    """
    spec = model.parse_spec({"pluginId": "pat", "version": "1.0.0", "tables": [_table(pattern)]})
    problems = validate(spec)
    path = write_schema(tmp_path, "pat", f"pluginId: pat\nversion: 1.0.0\ntables: [{_table_yaml(pattern)}]")
    outcome = run("apply", str(path), "-d", db_url)
    if problems:
        assert [p.code for p in problems] == ["ES108"] and outcome.exit_code != 0
        return
    assert outcome.exit_code == 0, outcome.stderr
    for value in VALUES:
        if portable_regex.search(pattern, value):
            _plain_insert(db_url, value)
        else:
            with pytest.raises((sqlite3.IntegrityError, psycopg.errors.CheckViolation)):
                _plain_insert(db_url, value)


def _plain_insert(url: str, value: str) -> None:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            with conn:
                conn.execute("INSERT INTO ext_pat__item (code) VALUES (?)", (value,))
        finally:
            conn.close()
    else:
        with psycopg.connect(url) as pg:
            pg.execute("INSERT INTO ext_pat.item (code) VALUES (%s)", (value,))


def _table(pattern: str) -> dict[str, object]:
    return {"name": "item", "fields": [{"name": "code", "type": "Text", "validation": {"pattern": pattern}}]}


def _table_yaml(pattern: str) -> str:
    quoted = pattern.replace("'", "''")
    return f"{{name: item, fields: [{{name: code, type: Text, validation: {{pattern: '{quoted}'}}}}]}}"
