"""Data checks: what a destructive step would cost, counted in the database.

A plan's classification (:mod:`extschema.planning.safety`) says *which* rows to count — those of a
table about to be dropped, the values of a column about to be dropped, the rows a narrowed field
would no longer allow; this module counts them, with the query each dialect renders
(:meth:`~extschema.dialects.Dialect.data_check_sql`). Twice:

- for the approver (:func:`count_all`), in a read-only transaction, before anything runs;
- in the migration itself (:func:`refuse_violations`), under its lock, with the narrowed fields'
  tables locked as the change locks them: the rows counted are the rows the change meets, so a
  row a writer committed since the approval is refused (ES309), never truncated or rounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

from extschema.dialects import Dialect, Predated
from extschema.planning import Plan, safety
from extschema.problems import Kind, Problem, ProblemError

if TYPE_CHECKING:
    from extschema.engine.migrator import Engine


def count(engine: Engine, plugin_id: str, check: safety.DataCheck) -> int:
    """The rows (or values) *check* counts in *plugin_id*'s tables, as they are now."""
    (counted,) = count_all(engine, plugin_id, [check])
    return counted


def count_all(engine: Engine, plugin_id: str, checks: Sequence[safety.DataCheck]) -> list[int]:
    """The count of each of *checks*, in order, read in one transaction (none opened for no checks)."""
    if not checks:
        return []
    with engine.database.transaction(read_only=True) as conn:
        return count_in(conn, engine.dialect, plugin_id, checks)


def count_in(conn: Connection, dialect: Dialect, plugin_id: str, checks: Sequence[safety.DataCheck]) -> list[int]:
    """The count of each of *checks*, in *conn*'s transaction."""
    sql = dialect.data_check_sql
    return [int(conn.exec_driver_sql(sql(plugin_id, c)).scalar_one()) for c in checks]


class ViolatingRows(ProblemError):
    """ES309 found in the migration's transaction: rows break a field *plan* narrows, or a rule a
    rebuild in it adds to a table that predates it (nothing ran).

    *counts* has one count per data check of ``safety.classify_plan(plan)``, in order (0 for the
    checks that count losses, which are not counted again), for callers that word the refusal;
    *predated* the rules a rebuild adds (:meth:`~extschema.dialects.Dialect.predated_rules`) that
    rows break, with their counts.
    """

    def __init__(self, plan: Plan, counts: Sequence[int], predated: Sequence[tuple[Predated, int]] = ()) -> None:
        self.plan, self.counts, self.predated = plan, tuple(counts), tuple(predated)
        found = [(op.op, check) for op in safety.classify_plan(plan) for check in op.checks]
        problems = [
            Problem("ES309", "spec.tables", safety.refusal(op, check, n))
            for (op, check), n in zip(found, counts, strict=True)
            if n
        ]
        problems.extend(
            Problem("ES309", f"column {p.check.table}.{p.check.column}", predated_refusal(p, n))
            for p, n in self.predated
        )
        super().__init__(problems, Kind.REFUSED)


def predated_refusal(predated: Predated, count: int) -> str:
    """Why a change rebuilding a table is refused (ES309) when *count* rows break a rule the table predates."""
    check = predated.check
    return (
        f"{predated.op.describe()}: {predated.rule}: {count} existing row(s) of {check.table} hold a value of "
        f"{check.column} outside it; nothing was changed — fix or delete those rows first, or make the field "
        "BigInt in a new version"
    )


def refuse_violations(conn: Connection, dialect: Dialect, plan: Plan) -> None:
    """Count again, in the migration's transaction (under the plugin's lock, before any statement
    of *plan* runs), the rows that break a field *plan* narrows, and those breaking a rule a rebuild
    of *plan* adds to a table that predates it; raise :class:`ViolatingRows` if any.

    The narrowed fields' tables are locked first, in the mode the change itself takes
    (:meth:`~extschema.dialects.Dialect.lock_tables`): a writer whose transaction was open when
    the migration started has committed before the count, or waits until the migration ends.
    """
    found = [check for op in safety.classify_plan(plan) for check in op.checks]
    wanted = [check for check in found if check.kind in safety.VIOLATIONS]
    predated = dialect.predated_rules(conn, plan)
    if not wanted and not predated:
        return
    tables = sorted(
        {check.table for check in (*wanted, *(p.check for p in predated)) if check.kind == "rows_violating"}
    )
    for statement in dialect.lock_tables(plan.plugin_id, tables):
        conn.exec_driver_sql(statement)
    counted = iter(count_in(conn, dialect, plan.plugin_id, wanted))
    counts = [next(counted) if check.kind in safety.VIOLATIONS else 0 for check in found]
    broken = [
        (p, n)
        for p, n in zip(predated, count_in(conn, dialect, plan.plugin_id, [p.check for p in predated]), strict=True)
        if n
    ]
    if any(counts) or broken:
        raise ViolatingRows(plan, counts, broken)
