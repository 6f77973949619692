"""How risky each operation is, what data to count before running it, and the plan's hash.

Classes, for the person approving:

- ``safe`` — adds or renames; no row is rewritten, no long lock is held;
- ``rewriting`` — rewrites or scans a whole table under a lock (a type change), or runs hand-written SQL;
- ``destructive`` — drops data (a table, a column, enum values rows use) or narrows a rule.

A plan with a rewriting or destructive operation runs only when approved by its :func:`plan_hash`.
Destructive operations carry a :class:`DataCheck`: the engine counts, before anything runs, the
rows whose data would be lost or that would violate the new rule, so the refusal (and the
approver) sees the real cost. Classification is pure: the counts come from the database later.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Literal

from extschema.planning import ops
from extschema.planning.ops import Op, Plan, canonical_json
from extschema.planning.resolved import ColumnDef

OpClass = Literal["safe", "rewriting", "destructive"]
#: Order of severity: a plan's class is its most severe operation's.
SEVERITY: dict[OpClass, int] = {"safe": 0, "rewriting": 1, "destructive": 2}


@dataclasses.dataclass(frozen=True)
class DataCheck:
    """A count the engine runs before the plan (the dialect renders it as ``SELECT count(*)``).

    - ``rows_lost``: rows of *table* (a dropped table);
    - ``values_lost``: rows of *table* where *column* is not NULL (a dropped column);
    - ``rows_violating``: rows of *table* whose *column* value, valid as *before*, is not valid
      as *after* (a narrowed type, a new rule, NOT NULL, removed enum values).

    *table* and *column* are logical names as they are before the operation runs.
    """

    kind: Literal["rows_lost", "values_lost", "rows_violating"]
    table: str
    column: str | None = None
    before: ColumnDef | None = None
    after: ColumnDef | None = None


@dataclasses.dataclass(frozen=True)
class Classified:
    """One operation with its class, why, and what to count."""

    op: Op
    op_class: OpClass
    reason: str
    check: DataCheck | None = None


def classify(op: Op) -> Classified:
    """The class of *op* (see the module's docstring)."""
    match op:
        case ops.DropTable():
            return Classified(op, "destructive", "drops the table and its rows", DataCheck("rows_lost", op.table.name))
        case ops.DropColumn():
            return Classified(
                op,
                "destructive",
                "drops the column and its values",
                DataCheck("values_lost", op.before.name, op.column.name),
            )
        case ops.RunSql():
            return Classified(op, "rewriting", "hand-written SQL: what it does is not known to extschema")
    return Classified(op, "safe", "adds or renames without rewriting rows")


def plan_class(classified: list[Classified]) -> OpClass:
    """The most severe class among *classified* (``safe`` for an empty plan)."""
    return max((c.op_class for c in classified), key=SEVERITY.__getitem__, default="safe")


def plan_hash(base_checksum: str | None, plan: Plan) -> str:
    """A stable short hash of *plan* from the registered spec *base_checksum*.

    The same base and the same operations give the same hash on every machine and run (the
    canonical serialised form, not ``repr``); any other base or operation gives another, so an
    approval approves exactly one plan. 16 hex digits: short enough to paste into Git, far too
    many to collide by accident.
    """
    text = canonical_json({"base": base_checksum, "plan": plan.to_dict()})
    return hashlib.sha256(text.encode()).hexdigest()[:16]
