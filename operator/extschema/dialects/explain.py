"""How each database explains a statement: PostgreSQL's ``EXPLAIN (FORMAT JSON)`` with hypopg and
pg_stat_statements where present, SQLite's ``EXPLAIN QUERY PLAN``.

Nothing here executes the statement explained (never ``EXPLAIN ANALYZE``) or changes the database: the
caller runs everything in a transaction it rolls back (a hypopg extension created for the check goes with it).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable

from extschema import querycheck
from extschema.naming import PhysicalName

#: Marks analyze's own queries (counts, samples): pg_stat_statements' figures leave them out.
TAG = "/* extschema analyze */"


class Explain(Executable, ClauseElement):
    """``PREFIX <statement>``: the statement rendered by SQLAlchemy as it would run, bound parameters included."""

    inherit_cache = False

    def __init__(self, statement: Executable, prefix: str) -> None:
        self.statement = statement
        self.prefix = prefix


@compiles(Explain)
def _compile_explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{element.prefix} {compiler.process(element.statement, **kw)}"  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class Statistics:
    """pg_stat_statements' figures for a plugin's statements, or why there are none."""

    available: bool
    reason: str = ""
    rows: tuple[dict[str, Any], ...] = ()


class Explainer:
    """The questions :mod:`extschema.engine.analysis` asks a database."""

    #: Whether plans carry costs (and a hypothetical index can be costed).
    costs = False

    def explain(self, conn: sa.Connection, statement: Executable, params: Mapping[str, Any]) -> querycheck.PlanSummary:
        raise NotImplementedError

    def table_rows(self, conn: sa.Connection, table: PhysicalName, cap: int) -> float:
        """Rows in *table*: counted up to *cap* (enough to tell a small table)."""
        quoted = ".".join(f'"{part}"' for part in (table.schema, table.name) if part)
        limit = int(cap)
        counted = conn.exec_driver_sql(f"SELECT {TAG} count(*) FROM (SELECT 1 FROM {quoted} LIMIT {limit}) AS t")
        return float(counted.scalar() or 0)

    def hypothetical_index(self, conn: sa.Connection, create_index: str) -> str | None:
        """Make *create_index* a hypothetical index for the plans that follow; None when done, else why not."""
        return "hypothetical indexes need PostgreSQL with hypopg"

    def drop_hypothetical(self, conn: sa.Connection) -> None:
        """Forget every hypothetical index of this session."""

    def statistics(self, conn: sa.Connection, plugin_id: str, namespace: str) -> Statistics:
        return Statistics(False, "pg_stat_statements is PostgreSQL only")


class PostgresExplainer(Explainer):
    costs = True

    def explain(self, conn: sa.Connection, statement: Executable, params: Mapping[str, Any]) -> querycheck.PlanSummary:
        found = conn.execute(Explain(statement, "EXPLAIN (FORMAT JSON)"), dict(params)).scalar()
        return querycheck.parse_postgres(json.loads(found) if isinstance(found, str) else found)

    def table_rows(self, conn: sa.Connection, table: PhysicalName, cap: int) -> float:
        # The planner's own estimate once the table was analysed, when it is above the threshold.
        estimate = conn.execute(
            sa.text(
                "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :schema AND c.relname = :name"
            ),
            {"schema": table.schema, "name": table.name},
        ).scalar()
        if estimate is not None and float(estimate) >= cap:
            return float(estimate)
        # Never analysed (-1), or analysed before the rows came: count, up to the threshold.
        return max(float(estimate or 0), super().table_rows(conn, table, cap))

    def hypothetical_index(self, conn: sa.Connection, create_index: str) -> str | None:
        installed = conn.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'hypopg'").scalar()
        if installed is None:
            available = conn.exec_driver_sql("SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg'").scalar()
            if available is None:
                return "hypopg is not installed on the server (Debian: apt-get install postgresql-15-hypopg)"
            # Created inside the caller's transaction, which is rolled back: the database keeps nothing.
            try:
                with conn.begin_nested():
                    conn.exec_driver_sql("CREATE EXTENSION hypopg")
            except sa.exc.DBAPIError as error:
                return f"cannot create extension hypopg: {_first_line(error)}"
        try:
            with conn.begin_nested():
                conn.execute(sa.text("SELECT * FROM hypopg_create_index(:sql)"), {"sql": create_index})
        except sa.exc.DBAPIError as error:
            return f"hypopg refused the index: {_first_line(error)}"
        return None

    def drop_hypothetical(self, conn: sa.Connection) -> None:
        conn.exec_driver_sql("SELECT hypopg_reset()")

    def statistics(self, conn: sa.Connection, plugin_id: str, namespace: str) -> Statistics:
        if conn.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").scalar() is None:
            return Statistics(False, "extension pg_stat_statements is not created in this database")
        pattern = "%" + namespace.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "%"
        try:
            with conn.begin_nested():
                found = conn.execute(
                    sa.text(
                        "SELECT query, calls, mean_exec_time, max_exec_time, rows FROM pg_stat_statements "
                        "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                        "AND query LIKE :pattern AND strpos(query, :tag) = 0 "
                        r"AND query ~* '^\s*(select|insert|update|delete|with)\M' "
                        "ORDER BY mean_exec_time DESC, query LIMIT 20"
                    ),
                    {"pattern": pattern, "tag": TAG},
                ).all()
        except sa.exc.DBAPIError as error:  # e.g. not in shared_preload_libraries
            return Statistics(False, f"pg_stat_statements cannot be read: {_first_line(error)}")
        rows = tuple(
            {
                "query": r.query,
                "calls": int(r.calls),
                "meanMs": round(float(r.mean_exec_time), 3),
                "maxMs": round(float(r.max_exec_time), 3),
                "rows": int(r.rows),
            }
            for r in found
        )
        return Statistics(True, "", rows)


class SqliteExplainer(Explainer):
    def explain(self, conn: sa.Connection, statement: Executable, params: Mapping[str, Any]) -> querycheck.PlanSummary:
        rows = conn.execute(Explain(statement, "EXPLAIN QUERY PLAN"), dict(params)).all()
        return querycheck.parse_sqlite(rows)


EXPLAINERS: dict[str, type[Explainer]] = {"postgresql": PostgresExplainer, "sqlite": SqliteExplainer}


def _first_line(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    text = str(original).strip()
    return text.splitlines()[0] if text else type(original).__name__
