"""Values near every rule of every column type, and whether a real database stores them as given.

Shared by the differential tests: tests/test_rowmodels.py (the Create model against the database)
and the API's (the API against the database). A value is *accepted by the database* when the
insert succeeds AND the row holds what was sent: PostgreSQL rounds a Decimal's extra scale digits
and cuts trailing spaces beyond a varchar's length, silently; the models refuse both.

Values are JSON values of the column's own type (the models are strict about JSON types: "12" is
no Int, 1 is no Boolean, where SQLite's affinity would convert them); the deliberate narrowings
(NUL and lone surrogates in text, NaN, naive timestamps) are tested on their own.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from hypothesis import strategies as st

from extschema import model, planning
from extschema.engine.connection import Database
from extschema.planning import ColumnDef

PLUGIN = "rowdiff"
TABLE = "item"

SPEC = """
pluginId: rowdiff
version: 1.0.0
enums:
  - {name: level, values: [low, high, with space]}
tables:
  - name: item
    fields:
      - {name: s_bounded, type: String, validation: {minLength: 2, maxLength: 10}}
      - {name: s_default, type: String}
      - {name: s_pattern, type: String, validation: {pattern: '^[A-Z]{3}-[0-9]+$'}}
      - {name: s_dot, type: String, validation: {pattern: 'a.c$', maxLength: 20}}
      - {name: t_alt, type: Text, validation: {pattern: '^(ab|cd)+$'}}
      - {name: t_bounded, type: Text, validation: {minLength: 1, maxLength: 5}}
      - {name: t_free, type: Text, description: 'Free text; */ and quotes " stay in comments'}
      - {name: json, type: Text, validation: {maxLength: 3}}
      - {name: i_half, type: Int, validation: {min: 0.5, max: 9.5}}
      - {name: d_default, type: Decimal, precision: 4, scale: 1, default: 1.5, required: true}
      - {name: i_bounded, type: Int, validation: {min: -3, max: 7}}
      - {name: i_free, type: Int}
      - {name: b_free, type: BigInt}
      - {name: b_bounded, type: BigInt, validation: {min: -9223372036854775000}}
      - {name: f_bounded, type: Float, validation: {min: 0.5, max: 10000000000.0}}
      - {name: f_free, type: Float}
      - {name: d_bounded, type: Decimal, precision: 6, scale: 2, validation: {min: -1.5, max: 100}}
      - {name: d_free, type: Decimal}
      - {name: d_whole, type: Decimal, precision: 3, scale: 0, validation: {min: 0.5}}
      - {name: flag, type: Boolean}
      - {name: day, type: Date}
      - {name: at, type: DateTime}
      - {name: doc, type: Json}
      - {name: ref, type: Uuid}
      - {name: lvl, type: Enum, enum: level}
      - {name: must, type: Int, required: true, default: 1}
"""

#: Columns whose rule SQLite does not enforce (plan warning ES501): compared on PostgreSQL only.
SQLITE_UNENFORCED = {"t_alt", "s_dot"}


@functools.cache
def resolved() -> planning.Resolved:
    import yaml

    spec = model.parse_spec(yaml.safe_load(SPEC))
    return planning.shape(spec)


def column(name: str) -> ColumnDef:
    table = resolved().table(TABLE)
    assert table is not None
    found = table.column(name)
    assert found is not None
    return found


def columns() -> list[str]:
    table = resolved().table(TABLE)
    assert table is not None
    return [c.name for c in table.columns]


# --- strategies ---------------------------------------------------------------------------------

_CHARS = st.sampled_from(" aZ-é€😀\x00\n") | st.characters(codec="utf-8")


@st.composite
def _text_near(draw: st.DrawFn, lengths: list[int]) -> str:
    size = draw(st.sampled_from(lengths) | st.integers(0, max(lengths) + 2))
    text = draw(st.text(_CHARS, min_size=size, max_size=size))
    if draw(st.booleans()):  # trailing spaces: PostgreSQL's varchar cuts them beyond its length
        text = text[: max(0, size - 2)] + "  "
    return text


def _ints_near(*bounds: int) -> st.SearchStrategy[int]:
    edges = [b + d for b in bounds for d in (-1, 0, 1)]
    return st.sampled_from(edges) | st.integers(min(edges) - 5, max(edges) + 5) | st.integers()


_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)

_DECIMAL_TEXT = st.sampled_from(
    ["0", "-0", "-0.00", "0.005", "100", "100.00", "100.001", "100.01", "99.99", "-1.5", "-1.50", "-1.51", "-1.49",
     "9999.99", "10000", "1E+2", "1e-7", "0.5", "0.4", "1", "999", "999.4", "1000", "007.50", ".5", "5.", "1_0",
     " 1", "1e400", "12345678901234567.89", "1234567890123456.78", "-9999999999999999.99", "0.001"]
)  # fmt: skip


def _decimals() -> st.SearchStrategy[Any]:
    numbers = st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**19), max_value=10**19)
    as_text = numbers.map(str)
    as_json_number = numbers.map(lambda d: int(d) if d == d.to_integral_value() and abs(d) < 10**30 else float(d))
    return _DECIMAL_TEXT | as_text | as_json_number | st.floats(-1e6, 1e6)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(_CHARS),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(_CHARS, max_size=4), inner, max_size=3),
    max_leaves=6,
)

_ZONES = st.sampled_from([datetime.UTC, datetime.timezone(datetime.timedelta(hours=5, minutes=30)),
                          datetime.timezone(-datetime.timedelta(hours=11))])  # fmt: skip


def values_for(name: str) -> st.SearchStrategy[Any]:
    """JSON values for column *name*: valid, just-invalid and null."""
    return values_of(column(name))


def values_of(col: ColumnDef) -> st.SearchStrategy[Any]:
    """JSON values for the column *col* (of any table): valid, just-invalid and null."""
    values: st.SearchStrategy[Any]
    match col.type:
        case "String" | "Text":
            low, high = col.min_length or 0, col.max_length or (col.string_length if col.type == "String" else 8)
            values = _text_near([0, low - 1, low, high, high + 1] if low else [0, high, high + 1])
            if col.pattern is not None:
                core = st.from_regex(col.pattern, fullmatch=True, alphabet=_CHARS)
                values = values | core | core.map(lambda v: v + "\n") | core.map(lambda v: "x" + v)
        case "Int" | "BigInt":
            low, high = _INT32 if col.type == "Int" else _INT64
            values = _ints_near(low, high, *(int(b) for b in (col.min, col.max) if b is not None))
        case "Float":
            edges = [b for b in (col.min, col.max) if b is not None] or [0.0, 1.7976931348623157e308]
            values = (
                st.floats(allow_nan=False, allow_infinity=False)
                | st.sampled_from([e * f for e in edges for f in (1, 1 + 1e-15, 1 - 1e-15) if math.isfinite(e * f)])
                | st.integers(-(2**70), 2**70)
            )
        case "Decimal":
            values = _decimals()
        case "Boolean":
            values = st.booleans()
        case "Date":
            values = st.dates().map(lambda d: d.isoformat())
        case "DateTime":
            values = st.datetimes(timezones=_ZONES).map(lambda d: d.isoformat())
        case "Json":
            values = _JSON
        case "Uuid":
            values = st.uuids().map(str)
        case "Enum":
            assert col.enum is not None
            values = st.sampled_from(col.enum.values) | st.text(_CHARS, max_size=12)
        case _:
            raise AssertionError(col.type)
    return values | st.none()


# --- the database's answer ----------------------------------------------------------------------


@dataclass
class Target:
    """The applied table of :data:`SPEC` in one database, with typed columns (as the API binds)."""

    database: Database
    table: sa.Table
    backend: str
    #: The table's columns, and values for the columns a row needs besides the one tested.
    defs: dict[str, ColumnDef] = field(default_factory=lambda: {c: column(c) for c in columns()})
    fill: dict[str, Any] = field(default_factory=lambda: {"must": 1})

    @classmethod
    def open(
        cls, url: str, shaped: planning.Resolved | None = None, plugin: str = PLUGIN, table_name: str = TABLE
    ) -> Target:
        """The table *table_name* of *plugin* as *shaped* (default: :data:`SPEC`'s) resolves it, in *url*."""
        database = Database(url)
        dialect = database.dialect
        table_def = (shaped or resolved()).table(table_name)
        assert table_def is not None
        name = dialect.namer.table(plugin, table_name)
        cols = [sa.Column(c.name, _bound(dialect.column_type(plugin, c))) for c in table_def.columns]
        table = sa.Table(name.name, sa.MetaData(), sa.Column("id", sa.BigInteger, primary_key=True), *cols,
                         schema=name.schema)  # fmt: skip
        if shaped is None:
            return cls(database, table, dialect.name)
        return cls(database, table, dialect.name, {c.name: c for c in table_def.columns}, {})

    def close(self) -> None:
        self.database.close()

    def stored(self, name: str, value: Any) -> Any:
        """*value* (a JSON value, or what the model made of it) as the API binds it."""
        col = self.defs[name]
        if value is None:
            return None
        if col.type == "Decimal":
            number = _as_decimal(value)
            if number is None:
                return value
            return format(number, "f") if self.backend == "sqlite" else number
        if col.type == "Json" and self.backend == "sqlite":
            return json.dumps(value)
        if col.type == "Date" and isinstance(value, str):
            return datetime.date.fromisoformat(value)
        if col.type == "DateTime":
            stamp = datetime.datetime.fromisoformat(value) if isinstance(value, str) else value
            # SQLite keeps the wall time without its offset: the API stores UTC there (and reads it back as UTC).
            return stamp.astimezone(datetime.UTC) if self.backend == "sqlite" and stamp.tzinfo else stamp
        if col.type == "Uuid" and isinstance(value, str):
            return uuid.UUID(value) if self.backend == "postgresql" else value
        if isinstance(value, uuid.UUID):
            return value if self.backend == "postgresql" else str(value)
        return value

    def accepts(self, name: str, value: Any) -> bool:
        """Whether the database stores *value* in column *name* unchanged."""
        sent = self.stored(name, value)
        row = {**self.fill, name: sent}
        with self.database.sa_engine.connect() as conn:
            transaction = conn.begin()
            try:
                got = conn.execute(self.table.insert().values(row).returning(self.table.c[name])).scalar_one()
            except (sa.exc.StatementError, OverflowError, ValueError):
                return False
            finally:
                transaction.rollback()
        return _same(self.defs[name], sent, got)


def _bound(sql_type: Any) -> Any:
    """The type as the API binds it: None in a JSON column is SQL NULL, not a JSON null (engine/entities.py)."""
    return type(sql_type)(none_as_null=True) if isinstance(sql_type, sa.JSON) else sql_type


def _as_decimal(value: Any) -> decimal.Decimal | None:
    try:
        if isinstance(value, float):
            number = decimal.Decimal(repr(value))
        elif isinstance(value, bool):
            return None
        else:
            number = decimal.Decimal(value)
    except (decimal.InvalidOperation, TypeError, ValueError):
        return None
    return number if number.is_finite() else None


def _same(col: ColumnDef, sent: Any, got: Any) -> bool:
    if sent is None or got is None:
        return sent is got
    match col.type:
        case "Decimal":
            a, b = _as_decimal(sent), _as_decimal(got)
            return a is not None and a == b
        case "Float":
            return float(sent) == float(got)
        case "String" | "Text" | "Int" | "BigInt" | "Enum" | "Boolean":
            return bool(sent == got)
    return True  # dates, timestamps, JSON, UUIDs: storing them is the answer
