"""A stand-in database for planning without one (``extschema diff``): a throwaway SQLite file that
holds the host application's core tables, as a file of SQL or a core description gives them.

Only what planning reads must be there: the core tables (with keys, so SQLite's foreign key check
finds the rows' parents) and, once applied to it, the plugins' registry. It never holds data.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

import sqlalchemy as sa

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
            raise ProblemError.one(
                "ES762",
                source,
                f"SQLite cannot run this core SQL: {error}; --core FILE.sql is read into an in-memory SQLite, so "
                "write the core tables in SQL SQLite runs (CREATE TABLE with plain types), or describe them in "
                "a core description file (docs/diff.md)",
                kind=Kind.INVALID,
            ) from None


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
