"""How risky each operation is, what data to count before running it, and the plan's hash.

Classes, for the person approving:

- ``safe`` — adds or renames; no row is rewritten, no long lock is held;
- ``rewriting`` — rewrites or scans a whole table under a lock (a type change), or runs hand-written SQL;
- ``destructive`` — drops data (a table, a column, enum values rows use), or narrows a type or a
  rule (length, bounds, pattern, NOT NULL, UNIQUE, a foreign key) that existing rows may violate.

Classes are those of PostgreSQL, where tables are large and writers concurrent: ``String(50)``
to ``String(100)`` is safe there (SQLite rebuilds the table, in the same transaction).

A plan with a rewriting or destructive operation runs only when approved by its :func:`plan_hash`.
Approvals are per plan hash and so per base: the hash covers the base (the registered spec's
checksum) and the operations, not the database, so with ``spec.targetSelector`` one hash approves
every target at that base, and targets at another base (behind, or not yet registered) have their
own hash, each listed in ``spec.approvedPlanHashes`` (or ``approvedPlanHash``) to approve it.
Data counts are per database: the same hash carries each target's own counts.
Destructive operations carry a :class:`DataCheck`: the engine counts, before anything runs, the
rows whose data would be lost or that would violate the new rule, so the refusal (and the
approver) sees the real cost. Classification is pure: the counts come from the database later.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Literal

from extschema.planning import conversions, ops
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
      as *after* (a narrowed type, a new rule, NOT NULL, UNIQUE, a foreign key, removed enum
      values): every rule of *after* — type range or length, rules, enum values, NOT NULL,
      uniqueness, referenced row — that a row breaks;
    - ``rows_duplicated``: rows of *table* whose values in *columns* (none of them NULL) another
      row has too (a new multi-column unique index or constraint).

    *table*, *column* and *columns* — and the names of *before* and *after* — are logical names
    as they are before the plan runs (:func:`classify_plan` maps them back across the plan's
    renames): the checks count before anything of the plan has run.
    """

    kind: Literal["rows_lost", "values_lost", "rows_violating", "rows_duplicated"]
    table: str
    column: str | None = None
    before: ColumnDef | None = None
    after: ColumnDef | None = None
    columns: tuple[str, ...] = ()


#: Checks counting rows no approval can let through: the database would refuse the change (ES309).
VIOLATIONS = frozenset({"rows_violating", "rows_duplicated"})


def refusal(op: Op, check: DataCheck, count: int) -> str:
    """Why *op* is refused (ES309) when *count* rows break the rule *check* counts."""
    if check.kind == "rows_duplicated":
        rows = f"{count} existing row(s) of {check.table} share their values in ({', '.join(check.columns)})"
    else:
        rows = f"{count} existing row(s) of {check.table} hold a {check.column} value the changed field does not allow"
    return (
        f"{op.describe()}: {rows}; an approval cannot change that — fix or delete those rows first, "
        "or change the spec so they fit"
    )


@dataclasses.dataclass(frozen=True)
class Classified:
    """One operation with its class, why, and what to count (*check*, and *more_checks* when the
    operation touches several columns: an enum's values removed from every column of the enum)."""

    op: Op
    op_class: OpClass
    reason: str
    check: DataCheck | None = None
    more_checks: tuple[DataCheck, ...] = ()

    @property
    def checks(self) -> tuple[DataCheck, ...]:
        return (self.check, *self.more_checks) if self.check is not None else self.more_checks


def classify(op: Op) -> Classified:
    """The class of *op* (see the module's docstring), with its data checks in *op*'s own names."""
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
        case ops.AlterColumn():
            return _alter(op)
        case ops.ChangeEnumValues() if op.removed:
            return _enum_values_removed(op)
        case ops.RunSql():
            return Classified(op, "rewriting", "hand-written SQL: what it does is not known to extschema")
        case ops.CreateIndex() if op.index.unique:
            columns = op.index.columns
            return Classified(
                op,
                "destructive",
                f"adds a unique index on ({', '.join(columns)}): rows sharing values violate it",
                DataCheck("rows_duplicated", op.table, columns=columns),
            )
    return Classified(op, "safe", SAFE.get(type(op), "creates what did not exist"))


def rollback_sql(op: ops.RunSql) -> Classified:
    """A raw step's ``rollbackSql`` (*op*'s ``sql``) as a rollback runs it: destructive by default,
    since extschema cannot know what it deletes, with a count of the rows of each table it names
    (the engine backs those tables up before it runs)."""
    if not op.sql.strip():
        return Classified(op, "safe", "the step's rollbackSql is empty: it runs nothing")
    from extschema import sqltext  # pglast, loaded only when there is raw SQL

    try:
        tables = sqltext.tables_named(op.sql, op.plugin_id)
    except sqltext.SqlSyntaxError:  # recorded by a version that checked less: nothing to count
        tables = []
    checks = tuple(DataCheck("rows_lost", table) for table in tables)
    reason = (
        "hand-written rollback SQL (the step's rollbackSql): it may delete or change any row of the tables it "
        "names, which are backed up first"
    )
    return Classified(op, "destructive", reason, checks[0] if checks else None, checks[1:])


#: Why each other operation is safe (creating ones: "creates what did not exist").
SAFE: dict[type[Op], str] = {
    ops.CreateIndex: "adds an index (built without blocking writes on PostgreSQL)",
    ops.DropIndex: "drops an index: no data is lost",
    ops.DropEnum: "drops what no column uses any more",
    ops.DropPluginNamespace: "drops what no table uses any more",
    ops.RenameTable: "renames the table: its rows, indexes and keys stay",
    ops.RenameColumn: "renames the column: its values stay",
    ops.RenameEnumValue: "renames the value: rows holding it hold the new name",
    ops.AddColumn: "adds a column: existing rows get its default (or no value)",
    ops.ChangeEnumValues: "adds enum values",
    ops.EnforceIntRange: "adds (or takes away) the rule keeping Int values within Int's range; no value changes",
}


def classify_plan(plan: Plan, rollback: bool = False) -> list[Classified]:
    """Each operation of *plan* classified, with data checks naming tables and columns as they are
    before the plan runs (what the engine counts, before anything runs).

    With *rollback*, *plan* is what a rollback runs: a raw step in it is that step's ``rollbackSql``
    (:func:`rollback_sql`), destructive rather than rewriting.

    An operation on a table this plan creates has no rows to lose or violate: it is safe and has
    no check. A check on a column this plan adds is left out (the column does not exist yet to be
    counted; the database still refuses rows that break the rule, and the migration rolls back).
    """
    names = _Names()
    found: list[Classified] = []
    for op in plan.ops:
        classified = rollback_sql(op) if rollback and isinstance(op, ops.RunSql) else classify(op)
        if classified.checks:
            if any(names.created(c.table) for c in classified.checks):
                classified = Classified(op, "safe", "on a table this plan creates: it has no rows yet")
            else:
                checks = tuple(c for c in map(names.original, classified.checks) if c is not None)
                classified = dataclasses.replace(
                    classified, check=checks[0] if checks else None, more_checks=checks[1:]
                )
        found.append(classified)
        names.follow(op)
    return found


class _Names:
    """Tables and columns as a plan renames and creates them, mapped back to the names before it."""

    def __init__(self) -> None:
        self.tables: dict[str, str] = {}  # current name -> name before the plan
        self.columns: dict[tuple[str, str], str] = {}  # (current table, current column) -> column before
        self.new_tables: set[str] = set()
        self.new_columns: set[tuple[str, str]] = set()
        self.values: dict[str, dict[str, str]] = {}  # enum -> current value -> value before the plan

    def created(self, table: str) -> bool:
        return table in self.new_tables

    def original(self, check: DataCheck) -> DataCheck | None:
        table = check.table
        if any((table, c) in self.new_columns for c in (*check.columns, *([check.column] if check.column else []))):
            return None
        column = self.columns.get((table, check.column), check.column) if check.column else None
        return dataclasses.replace(
            check,
            before=self._before(check.before, column),
            after=self._before(check.after, column),
            table=self.tables.get(table, table),
            column=column,
            columns=tuple(self.columns.get((table, c), c) for c in check.columns),
        )

    def _before(self, column: ColumnDef | None, name: str | None) -> ColumnDef | None:
        """*column* as the rows hold it before the plan: under its name then (*name*: the check's
        SQL addresses the column by it), and with its enum's values then (a value renamed earlier
        in the plan is still stored under its old name when the check counts)."""
        if column is None:
            return None
        if name is not None and column.name != name:
            column = dataclasses.replace(column, name=name)
        if column.enum is None or not self.values.get(column.enum.name):
            return column
        renamed = self.values[column.enum.name]
        enum = column.enum.model_copy(update={"values": [renamed.get(v, v) for v in column.enum.values]})
        return dataclasses.replace(column, enum=enum)

    def follow(self, op: Op) -> None:
        match op:
            case ops.RenameEnumValue():
                renamed = self.values.setdefault(op.before.name, {})
                renamed[op.new] = renamed.pop(op.old, op.old)
            case ops.CreateTable():
                self.new_tables.add(op.table.name)
            case ops.RenameTable():
                old, new = op.before.name, op.after.name
                self.tables[new] = self.tables.pop(old, old)
                self.columns = {(new if t == old else t, c): o for (t, c), o in self.columns.items()}
                self.new_columns = {(new if t == old else t, c) for t, c in self.new_columns}
                if old in self.new_tables:
                    self.new_tables = (self.new_tables - {old}) | {new}
            case ops.RenameColumn():
                table = op.after.name
                self.columns[(table, op.new)] = self.columns.pop((table, op.old), op.old)
                if (table, op.old) in self.new_columns:
                    self.new_columns = (self.new_columns - {(table, op.old)}) | {(table, op.new)}
            case ops.AddColumn():
                self.new_columns.add((op.after.name, op.column.name))


def _alter(op: ops.AlterColumn) -> Classified:
    narrowing = conversions.narrowing(op.old, op.new)
    change = conversions.type_change(op.old, op.new)
    what = f"{op.old.type} to {op.new.type}" if op.old.type != op.new.type else None
    if change is None:
        narrowing.insert(0, f"converts {op.old.type} to {op.new.type}: values may not convert as they are")
    rewrites = f"converts {what or op.new.type}: every row is rewritten under a lock"
    if narrowing:
        check = DataCheck("rows_violating", op.before.name, op.old.name, op.old, op.new)
        return Classified(
            op, "destructive", "; ".join([*narrowing, *([rewrites] if change == "rewriting" else [])]), check
        )
    if change == "rewriting":
        return Classified(op, "rewriting", rewrites)
    return Classified(op, "safe", f"changes {', '.join(op.changed())} without rewriting rows")


def _enum_values_removed(op: ops.ChangeEnumValues) -> Classified:
    checks = tuple(
        DataCheck("rows_violating", before.name, column.name, column, after.column(column.name))
        for before, after in op.tables
        for column in before.columns
        if column.enum is not None and column.enum.name == op.before.name
    )
    values = f"values {', '.join(op.removed)} of enum {op.before.name}"
    if not checks:
        return Classified(op, "safe", f"removes {values}, which no column uses")
    return Classified(op, "destructive", f"removes {values}: rows holding them violate it", checks[0], checks[1:])


def plan_class(classified: list[Classified]) -> OpClass:
    """The most severe class among *classified* (``safe`` for an empty plan)."""
    return max((c.op_class for c in classified), key=SEVERITY.__getitem__, default="safe")


def plan_hash(base_checksum: str | None, plan: Plan) -> str:
    """A stable short hash of *plan* from the registered spec *base_checksum*.

    The same base and the same operations give the same hash on every machine and run (the
    canonical serialised form, not ``repr``); any other base or operation gives another, so an
    approval approves exactly one plan — on every database at that base (a fleet's targets at the
    same version share it; the data counts, which may differ, are not part of it). 16 hex digits:
    short enough to paste into Git, far too many to collide by accident.
    """
    text = canonical_json({"base": base_checksum, "plan": plan.to_dict()})
    return hashlib.sha256(text.encode()).hexdigest()[:16]
