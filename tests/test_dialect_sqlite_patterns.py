"""Tables with a ``pattern`` rule work from any client: no REGEXP function needed on SQLite.

Translatable patterns are enforced with GLOB, length and substr (built into SQLite); the rest are
not put into a SQLite database, and ``plan`` says so with a warning (ES501). Every translation is
checked against real SQLite and the validator's :func:`portable_regex.search` on generated patterns,
and against real PostgreSQL's ``~``.
"""

from __future__ import annotations

import itertools
import random
import re
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from extschema import portable_regex
from extschema.dialects import SqliteDialect
from extschema.dialects.sqlite_patterns import Translation, to_glob, translate
from tests.helpers import approved_delete, run, write_schema

# --- translation -----------------------------------------------------------------------------

TRANSLATED = {
    "abc": "*abc*",
    "^abc$": "abc",
    "^a.c": "a?c*",
    "x.*y$": "*x*y",
    "^[A-Z][0-9]-[a-z_]$": "[A-Z][0-9]-[a-z_]",
    "^[^0-9]": "[^0-9]*",
    "^[]a]$": "[]a]",
    "^[-a]$": "[a-]",
    "^[a-]$": "[a-]",
    "^a\\.b\\*c\\?d\\[e$": "a.b[*]c[?]d[[]e",
    "^": "*",
    "$": "*",
    "^$": "",
    "^ü.ß$": "ü?ß",
    "^[A-Z]{3}-": "[A-Z][A-Z][A-Z]-*",
    "a+": "*a*",  # a search needs only the fewest repetitions at an unanchored end
    "ab*": "*a*",
    "a?": "**",
    "a+b": "*ab*",
    "^a{2}.*x": "aa*x*",
    ".+@.+$": "*?@?*",
    ".*?": "**",
    "x{1,3}": "*x*",
    "(ab)": "*ab*",
    "(?:ab){2}": "*abab*",
    "^(?:a[0-9]){2}$": "a[0-9]a[0-9]",
    "x.+$": "*x?*",
    r"\*\?\[\]": "*[*][?][[]]*",
    "[]a-]": "*[]a-]*",
    r"[^\]a]": "*[^]a]*",
    r"[\^]": "*^*",
    r"^[\^a]$": "[a^]",
    r"[^\^]": "*[^^]*",
    r"[\^-]": "*[-^]*",
    "^[0-9]{4}-[0-9]{2}$": "[0-9][0-9][0-9][0-9]-[0-9][0-9]",
}

#: Needing a length and a content condition besides the GLOB: one run between fixed parts.
WITH_RUN = {
    "^[A-Z]{3}-[0-9]+$": ("[A-Z][A-Z][A-Z]-*", (5, None), 4, 0, "[^0-9]"),
    "^[a-z]+$": ("*", (1, None), 0, 0, "[^a-z]"),
    "^x[^ ]{2,4}y$": ("x*y", (4, 6), 1, 1, "[ ]"),
    "^a.{0,3}$": ("a*", (1, 4), 1, 0, None),
    "^\\*?$": ("*", (0, 1), 0, 0, "[^*]"),
    "^(b)+c$": ("*c", (2, None), 0, 1, "[^b]"),
    "^(?:ab)[0-9]{0,2}$": ("ab*", (2, 4), 2, 0, "[^0-9]"),
    "^[^ ]{2}x?$": ("[^ ][^ ]*", (2, 3), 2, 0, "[^x]"),
}

UNTRANSLATED = [
    "^a{3",
    "a|b",
    "^(a|b)$",
    "^a^b",
    "a$b",
    "(a$)",
    "\\d",
    "^\\d$",
    "\\w+",
    "[\\d]",
    "[[:alpha:]]",
    "[a-c-e]",
    "[z-a]",
    "[]-a]",
    "[abc",
    "(a",
    "a\\",
    "a**",
    "a]b",  # not portable (ES108): the validator refuses it, so nothing is translated
    "^a{5,2}$",
    "^a+b+$",  # two runs
    "^a+.*$",  # a run and a '*'
    "^a{2,}x",  # a run whose end is not fixed
    "^(ab)+$",  # a repeated group of more than one character
    "^(a{2}){1,2}$",
    "^[a-z0-9]+(-[a-z0-9]+)*$",
    "^[a-z0-9_]{250}$",  # a GLOB longer than MAX_GLOB_LENGTH
]


@pytest.mark.parametrize(("pattern", "glob"), TRANSLATED.items())
def test_to_glob_translates_the_simple_cases(pattern: str, glob: str) -> None:
    assert to_glob(pattern) == glob
    assert translate(pattern) == Translation(glob)


@pytest.mark.parametrize(("pattern", "expected"), WITH_RUN.items())
def test_one_run_between_fixed_parts(pattern: str, expected: tuple[Any, ...]) -> None:
    assert to_glob(pattern) is None
    assert translate(pattern) == Translation(*expected)


@pytest.mark.parametrize("pattern", UNTRANSLATED)
def test_the_rest_is_not_translated(pattern: str) -> None:
    assert to_glob(pattern) is None and translate(pattern) is None


# --- generated patterns: the SQLite condition against the validator, SQLite and PostgreSQL ------

ALPHABET = "ab-*?[]^$.x 05\n\u00e9\u0663"
PIECES = ["a", "b", ".", "-", r"\*", r"\?", r"\[", r"\]", r"\^", r"\$", "\u00e9", "[ab]", "[^a]", "[*?]", "[a-b-]"]
PIECES += [r"[\]x]", "[^]]", r"[\^a]", "[-a]", r"[^\^]", r"[\^-]", "[\u0660-\u0669]", "[0-9]", "(?:ab)", "(a.)", "(b)"]
PIECES += [".*", ".+", ".{2,}", "a{2}", "[0-9]+", "a?", "x{1,3}", "[^ ]*", "(?:a[0-9]){2}", "(b){0,2}", "\\*?"]


def _generated(rnd: random.Random, count: int) -> list[str]:
    """Portable patterns, anchored about half the time at each end (so runs get translated too)."""
    found = []
    for _ in range(count):
        body = "".join(rnd.choice(PIECES) for _ in range(rnd.randint(1, 4)))
        pattern = rnd.choice(["", "^"]) + body + rnd.choice(["", "$"])
        assert portable_regex.is_portable_pattern(pattern) is None, pattern
        found.append(pattern)
    return found


def _values(rnd: random.Random) -> list[str]:
    short = ["".join(p) for n in range(4) for p in itertools.product("ab*0", repeat=n)]
    return short + ["".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(0, 8))) for _ in range(60)]


def test_generated_translations_agree_with_the_validator_on_real_sqlite() -> None:
    """Property-style: for random portable patterns, the SQLite condition (run by SQLite itself)
    accepts exactly the values :func:`portable_regex.search` (and Python's re) finds a match in."""
    rnd = random.Random(11)
    db = sqlite3.connect(":memory:")
    dialect = SqliteDialect()
    translated = with_run = 0
    for pattern in _generated(rnd, 600):
        condition = dialect.pattern_condition("v", pattern)
        found = translate(pattern)
        assert (condition is None) is (found is None)
        if condition is None or found is None:
            continue
        translated += 1
        with_run += not found.glob_only
        python = re.compile(pattern, re.DOTALL)  # compared where "$" (Python's differs) is absent
        for value in _values(rnd):
            expected = portable_regex.search(pattern, value)
            (got,) = db.execute(f"SELECT {condition} FROM (SELECT ? AS v)", (value,)).fetchone()
            assert bool(got) is expected, (pattern, condition, value)
            if "$" not in pattern:
                assert (python.search(value) is not None) is expected, (pattern, value)
    assert translated > 300 and with_run > 20, (translated, with_run)


@pytest.mark.postgres
def test_generated_translations_agree_with_postgresql(pg_url: str) -> None:
    """The same property against the database that enforces every pattern: PostgreSQL's ``~``."""
    rnd = random.Random(5)
    db = sqlite3.connect(":memory:")
    dialect = SqliteDialect()
    translated = 0
    with psycopg.connect(pg_url) as pg:
        for pattern in _generated(rnd, 300):
            condition = dialect.pattern_condition("v", pattern)
            if condition is None:
                continue
            translated += 1
            values = _values(rnd)
            query = "SELECT v ~ %s FROM unnest(%s::text[]) WITH ORDINALITY AS t(v, i) ORDER BY i"
            expected = [row[0] for row in pg.execute(query, (pattern, values))]
            for value, matches in zip(values, expected, strict=True):
                (got,) = db.execute(f"SELECT {condition} FROM (SELECT ? AS v)", (value,)).fetchone()
                assert bool(got) is matches, (pattern, condition, value)
    assert translated > 150


SAMPLES = [
    *["", "a", "b", "ab", "abb", "abc", "xabcx", "a.c", "axc", "A1-b", "Z9-_", "-", "]", "a]b", "ü.ß", "üxß"],
    *["5", "a*b?", "*", "**", "aax", "aaax", "ABC-1", "ABC-123", "ABC-", "ABC-1a", "AB-1", "abc-1", "x@y", "@y"],
    *["xaby", "xa by", "xabcdy", "xabcdey", "xy", "aaaa", "aaaaa", "a\nb", "ABC-\n1", "abc\n"],
]


@pytest.mark.postgres
def test_every_translation_matches_what_postgresql_matches(pg_url: str) -> None:
    """The SQLite condition accepts exactly the strings PostgreSQL's ~ finds the pattern in."""
    db = sqlite3.connect(":memory:")
    dialect = SqliteDialect()
    with psycopg.connect(pg_url) as pg:
        for pattern, value in itertools.product([*TRANSLATED, *WITH_RUN], SAMPLES):
            condition = dialect.pattern_condition("v", pattern)
            assert condition is not None
            (expected,) = pg.execute("SELECT %s ~ %s", (value, pattern)).fetchone() or (None,)
            (found,) = db.execute(f"SELECT {condition} FROM (SELECT ? AS v)", (value,)).fetchone()
            assert bool(found) == expected, (pattern, condition, value)


# --- in the database -------------------------------------------------------------------------

SPEC = """
pluginId: pat
version: 1.0.0
tables:
  - name: item
    fields:
      - {name: code, type: String, validation: {pattern: '^[A-Z][A-Z]-[0-9]$'}}
      - {name: word, type: String, validation: {pattern: '^[a-z]+(-[a-z]+)*$'}}
      - {name: tag, type: String, validation: {pattern: '^[a-z]+$'}}
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
    _insert(db_url, "tag", "abc")
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.CheckViolation)):
        _insert(db_url, "tag", "ab1")
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.CheckViolation)):
        _insert(db_url, "code", "ab-1")
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.CheckViolation)):
        _insert(db_url, "code", "AB-12")
    if db_url.startswith("sqlite"):
        _insert(db_url, "word", "ABC")  # a group has no built-in form: not enforced on SQLite (ES501 said so)
    else:
        with pytest.raises(psycopg.errors.CheckViolation):
            _insert(db_url, "word", "ABC")


def test_plan_warns_when_sqlite_cannot_enforce_a_pattern(db_url: str, tmp_path: Path) -> None:
    path = str(write_schema(tmp_path, "pat", SPEC))
    planned = run("plan", path, "-d", db_url, "-o", "json")
    assert planned.exit_code == 0, planned.stderr
    entry = planned.item()
    text = run("plan", path, "-d", db_url)
    assert text.exit_code == 0
    if db_url.startswith("sqlite"):
        (warning,) = entry["warnings"]
        assert (
            warning["code"] == "ES501"
            and "item.word" in warning["message"]
            and "'^[a-z]+(-[a-z]+)*$'" in warning["message"]
        )
        assert warning["file"] == path
        assert "ES501" in text.stderr and "item.word" in text.stderr
        assert not any("REGEXP" in s for s in entry["sql"])
    else:
        assert entry["warnings"] == []
        assert "ES501" not in text.stderr + text.stdout


def test_apply_warns_like_plan_when_sqlite_cannot_enforce_a_pattern(db_url: str, tmp_path: Path) -> None:
    """The warning comes from the plan apply runs, so apply says what plan said: stderr in text, a list in JSON."""
    path = str(write_schema(tmp_path, "pat", SPEC))
    planned = run("plan", path, "-d", db_url, "-o", "json").item()
    applied = run("apply", path, "-d", db_url, "-o", "json")
    assert applied.exit_code == 0, applied.stderr
    (result,) = applied.items()
    assert result["warnings"] == planned["warnings"]
    approved_delete(db_url, "pat")
    text = run("apply", path, "-d", db_url)
    assert text.exit_code == 0, text.stderr
    if db_url.startswith("sqlite"):
        assert [w["code"] for w in result["warnings"]] == ["ES501"] and result["warnings"][0]["file"] == path
        assert "warning: " in text.stderr and "ES501" in text.stderr and "item.word" in text.stderr
    else:
        assert result["warnings"] == []
        assert "ES501" not in text.stderr + text.stdout
    # Unchanged: nothing runs, nothing to warn about (plan says no changes, and no warning, too).
    again = run("apply", path, "-d", db_url, "-o", "json")
    assert again.items()[0]["warnings"] == []
