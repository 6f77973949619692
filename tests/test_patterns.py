"""Portable patterns mean the same in the validator, PostgreSQL and SQLite, and never hang anything."""

from __future__ import annotations

import itertools
import random
import re
import sqlite3
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from extschema import model, portable_regex
from extschema.validation import validate
from tests.helpers import execute, ext_table, run, write_schema

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


# --- GLOB translation ----------------------------------------------------------------------------

ALPHABET = "ab-*?[]^$.x\n\u00e9\u0663"


def _glob(connection: sqlite3.Connection, glob: str, value: str) -> bool:
    return bool(connection.execute("SELECT ? GLOB ?", (value, glob)).fetchone()[0])


def _values(rnd: random.Random) -> list[str]:
    short = ["".join(p) for n in range(4) for p in itertools.product("ab*", repeat=n)]
    return short + ["".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(0, 8))) for _ in range(60)]


GLOB_CASES = [
    ("abc", "*abc*"),
    ("^abc$", "abc"),
    ("^a.c", "a?c*"),
    ("^a.*b$", "a*b"),
    ("x.+$", "*x?*"),
    (r"\*\?\[\]", "*[*][?][[]]*"),
    (r"[]a-]", "*[]a-]*"),
    (r"[^\]a]", "*[^]a]*"),
    (r"[\^]", "*^*"),
    (r"^[\^a]$", "[a^]"),
    ("^[0-9]{4}-[0-9]{2}$", "[0-9][0-9][0-9][0-9]-[0-9][0-9]"),
    ("(?:ab){2}", "*abab*"),
    ("^$", ""),
    ("^", "*"),
]


@pytest.mark.parametrize(("pattern", "glob"), GLOB_CASES)
def test_to_glob_examples(pattern: str, glob: str) -> None:
    assert portable_regex.to_glob(pattern) == glob


@pytest.mark.parametrize("pattern", ["a|b", "^[0-9]+$", "a?", "x{1,3}", "a^b", "(a$)", r"^\d$", "(a"])
def test_to_glob_refuses_what_glob_cannot_say(pattern: str) -> None:
    assert portable_regex.to_glob(pattern) is None


def test_to_glob_agrees_with_search_and_python_re() -> None:
    """Property-style: random portable patterns, every translation checked on many strings."""
    rnd = random.Random(11)
    pieces = ["a", "b", ".", "-", r"\*", r"\?", r"\[", r"\]", r"\^", r"\$", "\u00e9", "[ab]", "[^a]", "[*?]", "[a-b-]"]
    pieces += [r"[\]x]", "[^]]", "[-a]", ".*", ".+", "a{2}", "(?:ab)", "(a.)", "[\u0660-\u0669]", ".{2,}"]
    connection = sqlite3.connect(":memory:")
    translated = 0
    for _ in range(400):
        body = "".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 5)))
        pattern = rnd.choice(["", "^"]) + body + rnd.choice(["", "$"])
        assert portable_regex.is_portable_pattern(pattern) is None, pattern
        glob = portable_regex.to_glob(pattern)
        if glob is None:
            continue
        translated += 1
        python = re.compile(pattern, re.DOTALL)  # compared where "$" (Python's differs) is absent
        for value in _values(rnd):
            expected = portable_regex.search(pattern, value)
            assert _glob(connection, glob, value) is expected, (pattern, glob, value)
            if "$" not in pattern:
                assert (python.search(value) is not None) is expected, (pattern, value)
    assert translated > 300


# --- Both databases: the validator and the database accept the same values --------------------

VALUES = ["3", "12", "\u0663", "x", "3a", ""]


@pytest.mark.parametrize("pattern", [r"^\d+$", r"^\w+$", "^[0-9]+$", "^[0-9]$"])
def test_database_and_validator_agree_on_pattern_values(
    db_url: str, tmp_path: Path, pattern: str, request: pytest.FixtureRequest
) -> None:
    """A pattern the validator accepts must accept/refuse the same values in the database.

    Before this change ``\\d`` was accepted: the validator (Python, Unicode) said the Arabic-Indic
    digit matched ``^\\d+$`` while PostgreSQL refused the row.
    """
    spec = model.parse_spec({"pluginId": "pat", "version": "1.0.0", "tables": [_table(pattern)]})
    problems = validate(spec)
    path = write_schema(tmp_path, "pat", f"pluginId: pat\nversion: 1.0.0\ntables: [{_table_yaml(pattern)}]")
    outcome = run("apply", str(path), "-d", db_url)
    if problems:
        assert [p.code for p in problems] == ["ES108"] and outcome.exit_code != 0
        return
    assert outcome.exit_code == 0, outcome.stderr
    if db_url.startswith("sqlite"):
        reason = "plain SQLite clients lack the REGEXP function patterns use until the dialect renders GLOB (defect 3)"
        request.node.add_marker(pytest.mark.xfail(reason=reason, strict=False))
    for value in VALUES:
        insert = f"INSERT INTO {ext_table(db_url, 'pat', 'item')} (code) VALUES (:value)"
        if portable_regex.search(pattern, value):
            execute(db_url, insert, {"value": value})
        else:
            with pytest.raises(sa.exc.IntegrityError):
                execute(db_url, insert, {"value": value})


def _table(pattern: str) -> dict[str, object]:
    return {"name": "item", "fields": [{"name": "code", "type": "Text", "validation": {"pattern": pattern}}]}


def _table_yaml(pattern: str) -> str:
    quoted = pattern.replace("'", "''")
    return f"{{name: item, fields: [{{name: code, type: Text, validation: {{pattern: '{quoted}'}}}}]}}"
