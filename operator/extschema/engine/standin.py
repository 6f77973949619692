"""A stand-in database for planning without one (``extschema diff``): a throwaway SQLite file that
holds the host application's core tables, as a file of SQL or a core description gives them.

Only what planning reads must be there: the core tables (with keys, so SQLite's foreign key check
finds the rows' parents) and, once applied to it, the plugins' registry. It never holds data.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite.base import ischema_names

from extschema.engine.migrator import Engine
from extschema.problems import Kind, ProblemError


def throwaway(engine: Engine) -> None:
    """No waiting for the disk: the stand-in is deleted when the command ends, so nothing is synced."""

    def fast(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.execute("PRAGMA synchronous = OFF")

    sa.event.listen(engine.sa_engine, "connect", fast)


def run_script(engine: Engine, script: str, source: str) -> None:
    """Run *script* (the host application's DDL) in the stand-in; ES762 when SQLite refuses it."""
    with engine.sa_engine.connect() as conn:
        driver = conn.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        try:
            driver.executescript(script)
        except sqlite3.Error as error:
            raise _refused(source, f"SQLite cannot run this core SQL: {error}") from None
        unknown = [
            f"{table}.{column} ({declared})"
            for (table,) in driver.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            for _, column, declared, *_ in driver.execute(f"PRAGMA table_info({_quoted(table)})").fetchall()
            if declared and _guessed(declared)
        ]
    if unknown:
        # SQLite would read them as NUMERIC (its fallback), and a reference to one as a Decimal.
        raise _refused(source, f"SQLite does not know the type of {', '.join(unknown)}")


def _refused(source: str, what: str) -> ProblemError:
    return ProblemError.one(
        "ES762",
        source,
        f"{what}; --core FILE.sql is read into an in-memory SQLite, so write the core tables in SQL SQLite "
        "runs, with types it knows (INTEGER, BIGINT, VARCHAR(n), TEXT, REAL, NUMERIC(p, s), BOOLEAN, DATE, "
        "DATETIME), or describe them in a core description file, which takes any logical type (docs/diff.md)",
        kind=Kind.INVALID,
    )


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


#: Substrings by which SQLite gives a type it does not know an affinity other than NUMERIC.
_AFFINITIES = ("INT", "CHAR", "CLOB", "TEXT", "BLOB", "REAL", "FLOA", "DOUB")


def _guessed(declared: str) -> bool:
    """Whether SQLAlchemy reads *declared* only by SQLite's NUMERIC fallback (``UUID``, ``SERIAL``, ``JSONB``)."""
    name = declared.upper().split("(")[0].strip()
    return name not in ischema_names and not any(part in name for part in _AFFINITIES)


def create_core_tables(engine: Engine, tables: Mapping[str, Sequence[str]]) -> None:
    """Empty core tables with these columns: ``id`` (when listed) the primary key, every other column
    unique, so that a foreign key from a plugin to any of them passes SQLite's check. Their types
    are not read (the description gives them)."""
    metadata = sa.MetaData()
    for name, columns in tables.items():
        sa.Table(
            name,
            metadata,
            *(sa.Column(column, sa.Text, primary_key=column == "id", unique=column != "id") for column in columns),
        )
    with engine.sa_engine.begin() as conn:
        metadata.create_all(conn)
