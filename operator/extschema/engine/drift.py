"""Drift: what the database really holds of a plugin, compared with the spec the registry says it has.

Planning diffs specs, never the live database (extschema owns these objects, so its record is the
truth); drift is how a change made behind its back is found. :func:`detect` reflects the plugin's
objects — its namespace, native enum types and their values, tables, columns (type as the dialect
would create it, nullability), indexes and unique constraints — and names every difference:
``missing`` (in the spec, not in the database), ``extra`` (in the database only: a column or
index added by hand) or ``changed``.

:func:`repair` re-creates what is missing — namespace, enum types, tables, columns, indexes — in
one migration under the plugin's lock, recorded in the history as kind ``repair``. It never drops
or alters anything: extra and changed objects may hold data or serve someone, so they are only
reported, for a person to decide.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from extschema import planning
from extschema.dialects import Dialect, RenderedPlan
from extschema.engine import catalog, migrator
from extschema.engine.registry import MigrationRecord, Registration, now
from extschema.planning import IndexDef, Op, Resolved, TableDef
from extschema.planning.diff import tables as table_ops

DifferenceKind = Literal["missing", "extra", "changed"]


@dataclasses.dataclass(frozen=True)
class Difference:
    """One way the database differs from the spec; *object* names it (``column order.note``)."""

    kind: DifferenceKind
    object: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "object": self.object, "detail": self.detail}

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

    def as_dict(self) -> dict[str, Any]:
        return {
            "pluginId": self.plugin_id,
            "inSync": self.in_sync,
            "differences": [d.as_dict() for d in self.differences],
        }


def detect(engine: migrator.Engine, plugin_id: str) -> DriftReport:
    """Compare the plugin's objects in the database with its registered spec (reads only).

    Raises ES306 when the plugin is not registered.
    """
    registration = engine.registration(plugin_id)
    if registration is None:
        raise migrator._not_registered(plugin_id)
    expected = _expected(engine, registration)
    with engine.database.reading() as conn:
        differences, _ = compare(sa.inspect(conn), engine.dialect, expected)
    return DriftReport(plugin_id, differences)


def repair(engine: migrator.Engine, plugin_id: str) -> list[str]:
    """Re-create what is missing, in one migration under the lock; returns what it did ([] when nothing)."""
    registration = engine.registration(plugin_id)
    if registration is None:
        raise migrator._not_registered(plugin_id)
    step = _Repair(engine, plugin_id, _expected(engine, registration))
    result = engine._migrate(plugin_id, step)
    return result.description


def _expected(engine: migrator.Engine, registration: Registration) -> Resolved:
    others = [r.spec for r in engine.registrations() if r.plugin_id != registration.plugin_id]
    refs = catalog.reference_types(engine.database, others, registration.spec)
    return planning.resolve(registration.spec, refs)


def compare(inspector: sa.Inspector, dialect: Dialect, expected: Resolved) -> tuple[list[Difference], list[Op]]:
    """The differences between the database and *expected*, and the operations re-creating what is missing."""
    plugin_id = expected.plugin_id
    found: list[Difference] = []
    ops: list[Op] = []
    namespace = dialect.namer.table(plugin_id, "").schema  # None where plugins share one namespace
    gone = namespace is not None and not inspector.has_schema(namespace)
    if gone:
        found.append(Difference("missing", f"schema {namespace}", "the plugin's schema does not exist"))
        ops.append(planning.CreatePluginNamespace(plugin_id))
    if namespace is not None and hasattr(inspector, "get_enums"):  # native enum types
        found.extend(_compare_enums(inspector, namespace, expected, ops, gone))
    expected_tables = set()
    for table in expected.tables:
        name = dialect.namer.table(plugin_id, table.name)
        expected_tables.add(str(name))
        if gone or not inspector.has_table(name.name, schema=name.schema):
            found.append(Difference("missing", f"table {table.name}", f"{name} does not exist"))
            ops.extend(table_ops.create_ops(plugin_id, table))
            continue
        found.extend(_compare_table(inspector, dialect, plugin_id, table, ops))
    for physical in [] if gone else dialect.plugin_tables(inspector, plugin_id):
        if physical not in expected_tables:
            found.append(Difference("extra", f"table {physical}", "not in the spec (created outside extschema)"))
    return found, ops


def _compare_enums(
    inspector: sa.Inspector, namespace: str, expected: Resolved, ops: list[Op], gone: bool
) -> list[Difference]:
    found: list[Difference] = []
    enums = [] if gone else inspector.get_enums(schema=namespace)  # type: ignore[attr-defined]
    actual = {e["name"]: list(e["labels"]) for e in enums}
    for enum in expected.enums:
        labels = actual.get(enum.name)
        if labels is None:
            found.append(Difference("missing", f"enum {enum.name}", f"type {namespace}.{enum.name} does not exist"))
            ops.append(planning.CreateEnum(expected.plugin_id, enum))
        elif labels != list(enum.values):
            found.append(
                Difference(
                    "changed",
                    f"enum {enum.name}",
                    f"values are {', '.join(labels)}; the spec has {', '.join(enum.values)}",
                )
            )
    for name in sorted(set(actual) - {e.name for e in expected.enums}):
        found.append(Difference("extra", f"enum {name}", f"type {namespace}.{name} is not in the spec"))
    return found


def _type_text(dialect: Dialect, sql_type: sa.types.TypeEngine[Any]) -> str:
    return str(dialect.sa_dialect.type_compiler_instance.process(sql_type))


def _compare_table(
    inspector: sa.Inspector, dialect: Dialect, plugin_id: str, table: TableDef, ops: list[Op]
) -> list[Difference]:
    found: list[Difference] = []
    name = dialect.namer.table(plugin_id, table.name)
    actual = {c["name"]: c for c in inspector.get_columns(name.name, schema=name.schema)}
    if "id" not in actual:
        found.append(Difference("missing", f"column {table.name}.id", "the surrogate key is gone"))
    built = dataclasses.replace(table, columns=())
    for column in table.columns:
        here = actual.get(column.name)
        where = f"column {table.name}.{column.name}"
        if here is None:
            found.append(Difference("missing", where, f"{name} has no column {column.name}"))
            after = dataclasses.replace(built, columns=(*built.columns, column))
            ops.append(planning.AddColumn(plugin_id, built, after, column))
            built = after
            continue
        built = dataclasses.replace(built, columns=(*built.columns, column))
        want, have = _type_text(dialect, dialect.column_type(plugin_id, column)), _type_text(dialect, here["type"])
        if want != have:
            found.append(Difference("changed", where, f"type is {have}; the spec has {column.type} ({want})"))
        if bool(here["nullable"]) != column.nullable:
            state, wanted = ("nullable", "required") if here["nullable"] else ("NOT NULL", "optional")
            found.append(Difference("changed", where, f"is {state}; the spec has it {wanted}"))
    for extra in sorted(set(actual) - {"id", *(c.name for c in table.columns)}):
        found.append(Difference("extra", f"column {table.name}.{extra}", "not in the spec (added outside extschema)"))
    found.extend(_compare_indexes(inspector, dialect, plugin_id, table, actual.keys(), ops))
    return found


def _compare_indexes(
    inspector: sa.Inspector, dialect: Dialect, plugin_id: str, table: TableDef, columns: Any, ops: list[Op]
) -> list[Difference]:
    name = dialect.namer.table(plugin_id, table.name)
    actual: dict[str, IndexDef] = {}
    for reflected in inspector.get_indexes(name.name, schema=name.schema):
        if reflected.get("duplicates_constraint") or reflected["name"] is None:
            continue  # the index behind a unique constraint: compared as the constraint
        columns_of = tuple(str(c) for c in reflected["column_names"])
        actual[reflected["name"]] = IndexDef(columns_of, bool(reflected["unique"]))
    for unique in inspector.get_unique_constraints(name.name, schema=name.schema):
        if unique["name"]:
            actual[unique["name"]] = IndexDef(tuple(unique["column_names"]), True)
    found: list[Difference] = []
    wanted = {
        dialect.index_name(plugin_id, table.name, index): index
        for index in (*table.column_indexes(), *table.unique_together, *table.indexes)
    }
    for index_name, index in wanted.items():
        what = f"{'unique ' if index.unique else ''}index {index_name} on {table.name} ({', '.join(index.columns)})"
        here = actual.get(index_name)
        if here is None:
            found.append(Difference("missing", f"index {index_name}", what + " does not exist"))
            if all(c in columns for c in index.columns):  # else the missing column's op creates it
                ops.append(planning.CreateIndex(plugin_id, table.name, index))
        elif here.columns != index.columns or here.unique != index.unique:
            have = f"{'unique ' if here.unique else ''}on ({', '.join(here.columns)})"
            found.append(Difference("changed", f"index {index_name}", f"is {have}; the spec has {what}"))
    for extra in sorted(set(actual) - set(wanted)):
        found.append(Difference("extra", f"index {extra}", f"on {table.name}, not in the spec"))
    return found


class _Repair(migrator._Migration):
    kind = "repair"

    def __init__(self, engine: migrator.Engine, plugin_id: str, expected: Resolved) -> None:
        self.engine, self.plugin_id, self.expected = engine, plugin_id, expected
        self.started = now()
        self.done: list[str] = []

    def check(self, conn: Connection, current: Registration | None) -> migrator.ApplyResult | None:
        if current is None:
            raise migrator._not_registered(self.plugin_id)
        self.current = current
        # Compared again under the lock: only what is missing now is re-created.
        _, ops = compare(sa.inspect(conn), self.engine.dialect, self.expected)
        if not ops:
            return migrator.ApplyResult(self.plugin_id, False, None, [])
        self.plan = planning.Plan(self.plugin_id, tuple(ops))
        return None

    def render(self, conn: Connection, history: list[MigrationRecord], migration_id: str) -> RenderedPlan:
        return self.engine.dialect.render_plan(self.plan, backup_tag=f"m{migration_id}")

    def record(
        self, conn: Connection, migration_id: str, rendered: RenderedPlan, duration: int
    ) -> migrator.ApplyResult:
        assert self.current is not None
        description = [f"re-created: {line}" for line in self.plan.describe()]
        self.engine.registry.record(
            conn, self.plugin_id, migration_id, "repair", self.current.owner, self.current.spec, description,
            rendered, "executed", self.started, duration, None,
        )  # fmt: skip
        return migrator.ApplyResult(self.plugin_id, True, migration_id, description, duration)
