"""Values come back exactly as written, on both databases: Decimal digits, big JSON integers, NULL Json.

Written and read through bare clients (sqlite3 with nothing registered, psycopg), as an application would.
"""

from __future__ import annotations

import decimal
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.helpers import run, write_schema

SPEC = """
pluginId: vals
version: 1.0.0
tables:
  - name: item
    fields:
      - {name: amount, type: Decimal, precision: 30, scale: 10}
      - {name: bounded, type: Decimal, precision: 30, scale: 10, validation: {min: -5, max: 12345678901234567890}}
      - {name: small, type: Decimal, precision: 4, scale: 2, validation: {min: 0.5, max: 10.25}}
      - {name: whole, type: Decimal, precision: 3, scale: 0, default: 7}
      - {name: doc, type: Json}
      - {name: fallback, type: Json, default: 12345678901234567890123}
"""

EXACT = "12345678901234567890.0123456789"
BIG_JSON = '{"n": 12345678901234567890123, "f": 0.1000000000000000000001}'


@pytest.fixture
def vals_db(db_url: str, tmp_path: Path) -> str:
    outcome = run("apply", str(write_schema(tmp_path, "vals", SPEC)), "-d", db_url)
    assert outcome.exit_code == 0, outcome.stderr
    return db_url


@pytest.fixture
def client(vals_db: str) -> Iterator[Client]:
    found = Client(vals_db)
    yield found
    found.close()


class Client:
    """A bare connection in autocommit mode: each statement commits or fails alone."""

    def __init__(self, url: str) -> None:
        self.sqlite = url.startswith("sqlite")
        self.table = "ext_vals__item" if self.sqlite else "ext_vals.item"
        if self.sqlite:
            self.conn: Any = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        else:
            self.conn = psycopg.connect(url, autocommit=True)

    def insert(self, column: str, value: object) -> int:
        mark = "?" if self.sqlite else "%s"
        row = self.conn.execute(f"INSERT INTO {self.table} ({column}) VALUES ({mark}) RETURNING id", (value,))
        return int(row.fetchone()[0])

    def read(self, column: str, row_id: int) -> Any:
        mark = "?" if self.sqlite else "%s"
        return self.conn.execute(f"SELECT {column} FROM {self.table} WHERE id = {mark}", (row_id,)).fetchone()[0]

    def text(self, column: str, row_id: int) -> str:
        return str(self.read(f"CAST({column} AS TEXT)", row_id))

    def close(self) -> None:
        self.conn.close()


def test_decimal_keeps_every_digit(client: Client) -> None:
    row = client.insert("amount", EXACT)
    assert str(decimal.Decimal(str(client.read("amount", row)))) == EXACT


def test_decimal_default(client: Client) -> None:
    row = client.insert("amount", "1")
    assert decimal.Decimal(str(client.read("whole", row))) == 7


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("bounded", "-5"),
        ("bounded", "-4.9"),
        ("bounded", "0"),
        ("bounded", "9"),  # as text '9' > '12345678901234567890'
        ("bounded", "12345678901234567889.9999999999"),
        ("bounded", "12345678901234567890"),
        ("bounded", "00012.5"),
        ("small", "0.5"),
        ("small", "10.25"),
        ("small", "9.99"),
    ],
)
def test_decimal_bounds_accept_exactly(client: Client, column: str, value: str) -> None:
    row = client.insert(column, value)
    assert decimal.Decimal(str(client.read(column, row))) == decimal.Decimal(value)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("bounded", "-5.0000000001"),
        ("bounded", "-6"),
        ("bounded", "12345678901234567890.0000000001"),  # the same REAL as the bound
        ("bounded", "99999999999999999999"),
        ("small", "0.49"),
        ("small", "10.26"),
        ("small", "-1"),
        ("amount", "123456789012345678901"),  # 21 digits before the point, 20 allowed
        ("amount", "abc"),
        ("amount", "1.2.3"),
        ("amount", "--1"),
        ("amount", ""),
    ],
)
def test_decimal_rejects_what_postgresql_rejects(client: Client, column: str, value: str) -> None:
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.DataError, psycopg.errors.IntegrityError)):
        client.insert(column, value)


@pytest.mark.parametrize("document", [BIG_JSON, "12345678901234567890123", '"text"', "[1, 2.50, null]"])
def test_json_keeps_big_numbers(client: Client, document: str) -> None:
    row = client.insert("doc", document)
    assert json.loads(client.text("doc", row), parse_float=decimal.Decimal) == json.loads(
        document, parse_float=decimal.Decimal
    )


def test_json_default_keeps_a_big_integer(client: Client) -> None:
    row = client.insert("amount", "1")
    assert json.loads(client.text("fallback", row)) == 12345678901234567890123


def test_nullable_json_accepts_null(client: Client) -> None:
    row = client.insert("doc", None)
    assert client.read("doc", row) is None


def test_json_rejects_what_is_not_json(client: Client) -> None:
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.DataError, psycopg.errors.InvalidTextRepresentation)):
        client.insert("doc", "{not json")


@pytest.mark.parametrize(
    ("precision", "scale", "minimum", "maximum"),
    [(5, 2, -10, 99.5), (4, 0, 3, 1000), (3, 3, 0.001, 0.5), (30, 10, -0.0000000001, 1e15), (6, 2, -99.995, -0.004)],
)
def test_sqlite_decimal_checks_agree_with_exact_arithmetic(
    precision: int, scale: int, minimum: float, maximum: float
) -> None:
    """The CHECKs accept exactly the plain decimal texts that fit NUMERIC(p,s) unrounded and lie within min/max."""
    from extschema.dialects import sqlite_decimal

    conditions = [
        sqlite_decimal.well_formed("v", precision, scale),
        *sqlite_decimal.bounds("v", precision, scale, minimum, maximum),
    ]
    low, high = decimal.Decimal(repr(minimum)), decimal.Decimal(repr(maximum))
    samples = {str(low), str(high), "0", "-0", "1", "-1", "10", "99.99", "1000", "0.001", "-0.004", "-0.005"}
    for number in (low, high, decimal.Decimal(0), decimal.Decimal(1)):
        for step in (decimal.Decimal(1).scaleb(-scale), decimal.Decimal(1), decimal.Decimal(1).scaleb(-scale - 1)):
            samples.update((str(number + step), str(number - step), format(number + step, "f")))
    db = sqlite3.connect(":memory:")
    try:
        for text in sorted(samples):
            (accepted,) = db.execute(f"SELECT ({') AND ('.join(conditions)}) FROM (SELECT ? AS v)", (text,)).fetchone()
            value = decimal.Decimal(text)
            fits = -value.as_tuple().exponent <= scale and value.adjusted() < precision - scale  # type: ignore[operator]
            plain_text = "e" not in text.lower()
            assert bool(accepted) == (plain_text and fits and low <= value <= high), text
    finally:
        db.close()
