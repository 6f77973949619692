"""Tables with a ``pattern`` rule work from any client: no REGEXP function needed on SQLite.

Translatable patterns are enforced with GLOB (built into SQLite); the rest are not put into a
SQLite database, and ``plan`` says so with a warning (ES501).
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from pathlib import Path

import psycopg
import pytest

from extschema.portable_regex import to_glob
from tests.helpers import run, write_schema

# --- to_glob ---------------------------------------------------------------------------------

TRANSLATED = {
    "abc": "*abc*",
    "^abc$": "abc",
    "^a.c": "a?c*",
    "x.*y$": "*x*y",
    "^[A-Z][0-9]-[a-z_]$": "[A-Z][0-9]-[a-z_]",
    "^[^0-9]": "[^0-9]*",
    "^[]a]$": "[]a]",
    "^[-a]$": "[-a]",
    "^[a-]$": "[a-]",
    "^a\\.b\\*c\\?d\\[e$": "a.b[*]c[?]d[[]e",
    "^": "*",
    "$": "*",
    "^$": "",
    "^ü.ß$": "ü?ß",
    "a]b": "*a]b*",
}

UNTRANSLATED = [
    "a+",
    "ab*",
    "a?",
    "^a{3}$",
    "(ab)",
    "a|b",
    "^a^b",
    "a$b",
    ".*?",
    "\\d",
    "\\w+",
    "[\\d]",
    "[[:alpha:]]",
    "[a-c-e]",
    "[z-a]",
    "[]-a]",
    "[abc",
    "a\\",
]


@pytest.mark.parametrize(("pattern", "glob"), TRANSLATED.items())
def test_to_glob_translates_the_simple_cases(pattern: str, glob: str) -> None:
    assert to_glob(pattern) == glob


@pytest.mark.parametrize("pattern", UNTRANSLATED)
def test_to_glob_leaves_the_rest(pattern: str) -> None:
    assert to_glob(pattern) is None


SAMPLES = ["", "a", "b", "ab", "abc", "xabcx", "a.c", "axc", "A1-b", "Z9-_", "-", "]", "a]b", "ü.ß", "üxß", "5", "a*b?"]


@pytest.mark.postgres
def test_every_translation_matches_what_postgresql_matches(pg_url: str) -> None:
    """SQLite's GLOB accepts exactly the strings PostgreSQL's ~ finds the pattern in."""
    db = sqlite3.connect(":memory:")
    with psycopg.connect(pg_url) as pg:
        for pattern, value in itertools.product(TRANSLATED, SAMPLES):
            glob = to_glob(pattern)
            assert glob is not None
            (expected,) = pg.execute("SELECT %s ~ %s", (value, pattern)).fetchone() or (None,)
            (found,) = db.execute("SELECT ? GLOB ?", (value, glob)).fetchone()
            assert bool(found) == expected, (pattern, glob, value)
            assert (re.search(pattern, value) is not None) == expected, (pattern, value)


# --- in the database -------------------------------------------------------------------------

SPEC = """
pluginId: pat
version: 1.0.0
tables:
  - name: item
    fields:
      - {name: code, type: String, validation: {pattern: '^[A-Z][A-Z]-[0-9]$'}}
      - {name: word, type: String, validation: {pattern: '^[a-z]+$'}}
"""


def _insert(url: str, column: str, value: str) -> None:
    """Through a bare client: sqlite3 with nothing registered, or psycopg."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute(f"INSERT INTO ext_pat__item ({column}) VALUES (?)", (value,))
        conn.close()
    else:
        with psycopg.connect(url) as pg:
            pg.execute(f"INSERT INTO ext_pat.item ({column}) VALUES (%s)", (value,))


def test_a_plain_client_can_write_to_a_table_with_patterns(db_url: str, tmp_path: Path) -> None:
    outcome = run("apply", str(write_schema(tmp_path, "pat", SPEC)), "-d", db_url)
    assert outcome.exit_code == 0, outcome.stderr
    _insert(db_url, "code", "AB-1")
    _insert(db_url, "word", "abc")
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.CheckViolation)):
        _insert(db_url, "code", "ab-1")
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.CheckViolation)):
        _insert(db_url, "code", "AB-12")
    if db_url.startswith("sqlite"):
        _insert(db_url, "word", "ABC")  # '+' has no GLOB form: not enforced on SQLite (ES501 said so)
    else:
        with pytest.raises(psycopg.errors.CheckViolation):
            _insert(db_url, "word", "ABC")


def test_plan_warns_when_sqlite_cannot_enforce_a_pattern(db_url: str, tmp_path: Path) -> None:
    path = str(write_schema(tmp_path, "pat", SPEC))
    planned = run("plan", path, "-d", db_url, "-o", "json")
    assert planned.exit_code == 0, planned.stderr
    (entry,) = planned.json()["plans"]
    text = run("plan", path, "-d", db_url)
    assert text.exit_code == 0
    if db_url.startswith("sqlite"):
        (warning,) = entry["warnings"]
        assert warning["code"] == "ES501" and "item.word" in warning["message"] and "'^[a-z]+$'" in warning["message"]
        assert warning["file"] == path
        assert "ES501" in text.stderr and "item.word" in text.stderr
        assert not any("REGEXP" in s for s in entry["sql"])
    else:
        assert entry["warnings"] == []
        assert "ES501" not in text.stderr + text.stdout
