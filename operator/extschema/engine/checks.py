"""Data checks: what a destructive step would cost, counted in the database before anything runs.

A plan's classification (:mod:`extschema.planning.safety`) says *which* rows to count — those of a
table about to be dropped, the values of a column about to be dropped, the rows a narrowed field
would no longer allow; this module counts them, so the approver (and a refusal) sees the real
cost, not a guess. Counting only reads: it runs in a read-only transaction, one per plan, with the
query each dialect renders (:meth:`~extschema.dialects.Dialect.data_check_sql`).
"""

from __future__ import annotations

from collections.abc import Sequence

from extschema.engine.migrator import Engine
from extschema.planning.safety import DataCheck


def count(engine: Engine, plugin_id: str, check: DataCheck) -> int:
    """The rows (or values) *check* counts in *plugin_id*'s tables, as they are now."""
    (counted,) = count_all(engine, plugin_id, [check])
    return counted


def count_all(engine: Engine, plugin_id: str, checks: Sequence[DataCheck]) -> list[int]:
    """The count of each of *checks*, in order, read in one transaction (none opened for no checks)."""
    if not checks:
        return []
    with engine.database.transaction(read_only=True) as conn:
        sql = engine.dialect.data_check_sql  # type: ignore[attr-defined]  # helper D adds it (wt-dialects)
        return [int(conn.exec_driver_sql(sql(plugin_id, c)).scalar_one()) for c in checks]
