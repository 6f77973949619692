"""Drift: what the database really holds of a plugin, compared with the spec the registry says it has.

Planning diffs specs, never the live database (extschema owns these objects, so its record is the
truth); drift is how a change made behind its back is found. :func:`detect` reads the plugin's
objects through :func:`extschema.engine.catalog.live_plugin` — its namespace, native enum types
and their values, tables, columns (type as the dialect would create it, nullability), indexes and
unique constraints — and names every difference: ``missing`` (in the spec, not in the database),
``extra`` (in the database only: a column or index added by hand) or ``changed``.

:func:`repair_plan` says what re-creates what is missing — namespace, enum types, tables, columns,
indexes; the ``repair`` migration (:mod:`extschema.engine.kinds.repair`) runs it in one migration
under the plugin's lock, recorded in the history as kind ``repair``; it is rendered and
finished as an apply is (a new index of a table with rows is built concurrently after COMMIT, as its
``finish``). It never drops or alters anything: extra and changed objects may hold data or serve
someone, so they are only reported, for a person to decide. The one change it makes is a rule the
table predates (an SQLite Int column created before extschema kept it within Int's range): the table
is rebuilt with it, its values unchanged, refused (ES309) while a value breaks it. On SQLite, views
and triggers tied to a table are reported as extra too (a rebuild of the table is refused while they exist).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa

from extschema import planning
from extschema.dialects import Dialect
from extschema.engine import catalog
from extschema.engine.registry import Registration
from extschema.planning import ColumnDef, Op, Plan, Resolved, TableDef
from extschema.planning.diff import tables as table_ops

if TYPE_CHECKING:  # the engine's facade imports this module
    from extschema.engine.migrator import Engine

DifferenceKind = Literal["missing", "extra", "changed"]


@dataclasses.dataclass(frozen=True)
class Difference:
    """One way the database differs from the spec; *object* names it (``column order.note``)."""

    kind: DifferenceKind
    object: str
    detail: str
    #: A changed object repair fixes (what is missing it always re-creates).
    repairable: bool = False

    @property
    def repaired(self) -> bool:
        """Whether a drift repair takes it away."""
        return self.kind == "missing" or self.repairable

    def __str__(self) -> str:
        return f"{self.kind} {self.object}"


@dataclasses.dataclass(frozen=True)
class DriftReport:
    plugin_id: str
    differences: list[Difference]

    @property
    def in_sync(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        """One line for a condition message: ``in sync``, or the differences named."""
        if self.in_sync:
            return "in sync"
        return f"{len(self.differences)} difference(s): " + "; ".join(str(d) for d in self.differences)


def detect(engine: Engine, expected: Sequence[Resolved]) -> list[DriftReport]:
    """Compare each plugin's objects in the database with its registered spec, *expected* (resolved
    above the engine, against the reference types of a :class:`extschema.reconcile.Snapshot`); reads only.

    The catalog is read once for all plugins (the operator checks every plugin on a timer).
    """
    with engine.database.reading() as conn:
        inspector = sa.inspect(conn)
        dialect = engine.dialect
        return [
            DriftReport(e.plugin_id, compare(catalog.live_plugin(inspector, dialect, e.plugin_id), dialect, e)[0])
            for e in expected
        ]


@dataclasses.dataclass(frozen=True)
class RepairPlan:
    """What a drift repair of a plugin re-creates, read without the lock: the engine's repair
    (:class:`extschema.engine.kinds.repair.Repair`) compares again under it and runs this plan only
    while it is still exactly what is missing."""

    #: The registration :attr:`expected` was resolved from.
    base: Registration
    #: The objects the registered spec asks for.
    expected: Resolved
    #: The operations re-creating what is missing (and rebuilding a table with a rule it predates).
    plan: Plan


def repair_plan(engine: Engine, base: Registration, expected: Resolved) -> RepairPlan:
    """What :func:`extschema.reconcile.repair` hands the engine: the plugin's objects compared with
    *expected* (its registered spec, *base*, resolved), and the operations re-creating what is missing.
    Reads only."""
    with engine.database.reading() as conn:
        _, ops = compare(
            catalog.live_plugin(sa.inspect(conn), engine.dialect, base.plugin_id), engine.dialect, expected
        )
    return RepairPlan(base, expected, Plan(base.plugin_id, tuple(ops)))


def compare(live: catalog.LivePlugin, dialect: Dialect, expected: Resolved) -> tuple[list[Difference], list[Op]]:
    """The differences between the database (*live*) and *expected*, and the operations re-creating what is missing."""
    plugin_id = expected.plugin_id
    found: list[Difference] = []
    ops: list[Op] = []
    if not live.namespace_exists:
        found.append(Difference("missing", f"schema {live.namespace}", "the plugin's schema does not exist"))
        ops.append(planning.CreatePluginNamespace(plugin_id))
    if live.enums is not None:
        found.extend(_compare_enums(live.enums, f"{live.namespace}.", expected, ops))
    expected_tables = set()
    for table in expected.tables:
        name = str(dialect.namer.table(plugin_id, table.name))
        expected_tables.add(name)
        here = live.tables.get(name)
        if here is None:
            found.append(Difference("missing", f"table {table.name}", f"{name} does not exist"))
            ops.extend(table_ops.create_ops(plugin_id, table))
            continue
        found.extend(_compare_table(here, dialect, plugin_id, table, ops))
    for name in sorted(set(live.tables) - expected_tables):
        found.append(Difference("extra", f"table {name}", "not in the spec (created outside extschema)"))
    return found, ops


def _compare_enums(actual: dict[str, list[str]], prefix: str, expected: Resolved, ops: list[Op]) -> list[Difference]:
    found: list[Difference] = []
    for enum in expected.enums:
        labels = actual.get(enum.name)
        if labels is None:
            found.append(Difference("missing", f"enum {enum.name}", f"type {prefix}{enum.name} does not exist"))
            ops.append(planning.CreateEnum(expected.plugin_id, enum))
        elif labels != list(enum.values):
            have, want = ", ".join(labels), ", ".join(enum.values)
            found.append(Difference("changed", f"enum {enum.name}", f"values are {have}; the spec has {want}"))
    for name in sorted(set(actual) - {e.name for e in expected.enums}):
        found.append(Difference("extra", f"enum {name}", f"type {prefix}{name} is not in the spec"))
    return found


def _compare_table(
    live: catalog.LiveTable, dialect: Dialect, plugin_id: str, table: TableDef, ops: list[Op]
) -> list[Difference]:
    found: list[Difference] = []
    if "id" not in live.columns:
        found.append(Difference("missing", f"column {table.name}.id", "the surrogate key is gone"))
    # Each missing column is added to the table as it is then: every spec column that exists, and those
    # added before it (a SQLite rebuild copies exactly the columns of "before").
    present = {c.name for c in table.columns if c.name in live.columns}
    built = _shape(table, present)
    unranged: list[str] = []  # Int columns whose table predates the CHECK keeping them within range
    for column in table.columns:
        here = live.columns.get(column.name)
        where = f"column {table.name}.{column.name}"
        if here is None:
            found.append(Difference("missing", where, f"{table.name} has no column {column.name}"))
            present.add(column.name)
            after = _shape(table, present)
            ops.append(planning.AddColumn(plugin_id, built, after, column))
            built = after
        else:
            found.extend(_compare_column(here, dialect, plugin_id, column, where))
            unenforced = dialect.unenforced(plugin_id, column, live.checks.values()) if dialect.reads_checks else None
            if unenforced is not None:
                found.append(Difference("changed", where, unenforced, repairable=True))
                unranged.append(column.name)
    for extra in sorted(set(live.columns) - {"id", *(c.name for c in table.columns)}):
        found.append(Difference("extra", f"column {table.name}.{extra}", "not in the spec (added outside extschema)"))
    found.extend(_compare_indexes(live, dialect, plugin_id, table, ops))
    if unranged:  # last: the rebuild re-creates the table's indexes, those re-created just before too
        ops.append(planning.EnforceIntRange(plugin_id, built, tuple(unranged)))
    found.extend(
        Difference("extra", tied, f"on {table.name}, made outside extschema (a rebuild of the table is refused)")
        for tied in live.tied
    )
    return found


def _shape(table: TableDef, columns: set[str]) -> TableDef:
    """*table* with only the *columns* named, and the indexes and unique constraints over them."""
    return dataclasses.replace(
        table,
        columns=tuple(c for c in table.columns if c.name in columns),
        unique_together=tuple(i for i in table.unique_together if set(i.columns) <= columns),
        indexes=tuple(i for i in table.indexes if set(i.columns) <= columns),
    )


def _compare_column(
    live: catalog.LiveColumn, dialect: Dialect, plugin_id: str, column: ColumnDef, where: str
) -> list[Difference]:
    found: list[Difference] = []
    want = catalog.type_text(dialect, dialect.column_type(plugin_id, column))
    if want != live.type:
        found.append(Difference("changed", where, f"type is {live.type}; the spec has {column.type} ({want})"))
    if live.nullable != column.nullable:
        state, wanted = ("nullable", "required") if live.nullable else ("NOT NULL", "optional")
        found.append(Difference("changed", where, f"is {state}; the spec has it {wanted}"))
    return found


def _compare_indexes(
    live: catalog.LiveTable, dialect: Dialect, plugin_id: str, table: TableDef, ops: list[Op]
) -> list[Difference]:
    found: list[Difference] = []
    wanted = {
        dialect.index_name(plugin_id, table.name, index): index
        for index in (*table.column_indexes(), *table.unique_together, *table.indexes)
    }
    for name, index in wanted.items():
        what = f"{'unique ' if index.unique else ''}index {name} on {table.name} ({', '.join(index.columns)})"
        here = live.indexes.get(name)
        if here is None:
            found.append(Difference("missing", f"index {name}", what + " does not exist"))
            if all(c in live.columns for c in index.columns):  # else the missing column's op creates it
                ops.append(planning.CreateIndex(plugin_id, table.name, index))
        elif here.columns != index.columns or here.unique != index.unique:
            have = f"{'unique ' if here.unique else ''}on ({', '.join(here.columns)})"
            found.append(Difference("changed", f"index {name}", f"is {have}; the spec has {what}"))
    for extra in sorted(set(live.indexes) - set(wanted)):
        found.append(Difference("extra", f"index {extra}", f"on {table.name}, not in the spec"))
    return found
