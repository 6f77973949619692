"""From specs to ordered, reversible operations.

Planning is a diff of two *desired states* (what the previously applied spec asked for and what
the new one asks for), not of the live database: extschema owns these objects, so its own
record is the truth, and drift is reported separately. Each operation knows its reverse, so the
rollback of a migration is planned — and recorded — together with the migration itself.

Operations are dialect-neutral; :mod:`extschema.dialects` renders them to SQL. Operations that a
dialect cannot do in place (SQLite cannot alter a CHECK constraint) carry the whole table
before and after, so the dialect can rebuild the table.

This issue's updates are additive only: new tables, nullable or defaulted fields, enums, enum
values, indexes and FK columns. Everything else is refused with ES301/ES302, located at the
field that changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from extschema import model
from extschema.model import EnumSpec, ExtensionSchemaSpec, FieldType, ForeignKey, TargetRef
from extschema.problems import Problem, ProblemError

#: The type of every surrogate key.
ID_TYPE: FieldType = "BigInt"
DEFAULT_STRING_LENGTH = 255


# --- Desired state --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ForeignKeyDef:
    references: TargetRef
    column: str
    on_delete: str


@dataclasses.dataclass(frozen=True)
class ColumnDef:
    """A column as the database should have it (dialects map ``type`` to native types)."""

    name: str
    type: FieldType
    nullable: bool = True
    unique: bool = False
    default: Any = None
    enum: EnumSpec | None = None
    precision: int | None = None
    scale: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    min: int | float | None = None
    max: int | float | None = None
    pattern: str | None = None
    foreign_key: ForeignKeyDef | None = None
    #: For people (a column comment where the database has them); not part of the column's shape.
    description: str | None = dataclasses.field(default=None, compare=False)

    @property
    def string_length(self) -> int:
        return self.max_length or DEFAULT_STRING_LENGTH


@dataclasses.dataclass(frozen=True)
class IndexDef:
    columns: tuple[str, ...]
    unique: bool = False
    name: str | None = None


@dataclasses.dataclass(frozen=True)
class TableDef:
    """A plugin table: ``id`` plus columns, multi-column unique constraints and indexes."""

    name: str
    columns: tuple[ColumnDef, ...]
    unique_together: tuple[IndexDef, ...] = ()
    indexes: tuple[IndexDef, ...] = ()
    #: For people (a table comment where the database has them); not part of the table's shape.
    description: str | None = dataclasses.field(default=None, compare=False)

    def column(self, name: str) -> ColumnDef | None:
        return next((c for c in self.columns if c.name == name), None)

    def column_indexes(self) -> tuple[IndexDef, ...]:
        """Indexes the table gets for its columns: unique fields, and FK columns (databases do
        not index those by themselves; joins and cascades need it) unless a declared index or
        constraint already starts with the column."""
        declared_leads = {i.columns[0] for i in (*self.indexes, *self.unique_together) if i.columns}
        found: list[IndexDef] = []
        for column in self.columns:
            if column.unique:
                found.append(IndexDef((column.name,), True))
            elif column.foreign_key is not None and column.name not in declared_leads:
                found.append(IndexDef((column.name,)))
        return tuple(found)

    def with_enum(self, enum: EnumSpec) -> TableDef:
        """The same table with every column of *enum* seeing its new values."""
        columns = tuple(
            dataclasses.replace(c, enum=enum) if c.enum is not None and c.enum.name == enum.name else c
            for c in self.columns
        )
        return dataclasses.replace(self, columns=columns)

    def uses_enum(self, enum_name: str) -> bool:
        return any(c.enum is not None and c.enum.name == enum_name for c in self.columns)


@dataclasses.dataclass(frozen=True)
class Desired:
    plugin_id: str
    enums: tuple[EnumSpec, ...]
    tables: tuple[TableDef, ...]  # in creation order: referenced tables first

    def table(self, name: str) -> TableDef | None:
        return next((t for t in self.tables if t.name == name), None)


#: ``(plugin, table) -> {column: FieldType}`` for every table a spec may reference outside
#: itself: core tables (reflected) and other plugins' tables (from their registered specs).
ReferenceTypes = Mapping[tuple[str, str], Mapping[str, FieldType | None]]


def reference_types_of(spec: ExtensionSchemaSpec) -> dict[tuple[str, str], dict[str, FieldType | None]]:
    """The column types a plugin offers to plugins that depend on it: ``id`` and declared fields."""
    return {(spec.plugin_id, t.name): {"id": ID_TYPE, **{f.name: f.type for f in t.fields}} for t in spec.tables}


def _referenced_type(fk: ForeignKey, spec: ExtensionSchemaSpec, refs: ReferenceTypes) -> FieldType:
    target = fk.references
    if target.plugin == spec.plugin_id:
        if fk.referenced_column == "id":
            return ID_TYPE
        table = spec.table(target.table)
        field = table.field(fk.referenced_column) if table else None
        if field is not None:
            return field.type
    else:
        found = refs.get((target.plugin, target.table), {}).get(fk.referenced_column)
        if found is not None:
            return found
    raise ProblemError.one(
        "ES204",
        f"spec.relationships[{fk.relationship}]",
        f"{target}.{fk.referenced_column} does not exist (or has a type extschema cannot reference); "
        "point the relationship at an existing column",
        kind="conflict",
    )


def _column(field: model.FieldSpec, enums: Mapping[str, EnumSpec]) -> ColumnDef:
    rules = field.validation or model.ValidationRules()
    return ColumnDef(
        name=field.name,
        type=field.type,
        nullable=not field.required,
        unique=field.unique,
        default=field.default,
        enum=enums.get(field.enum) if field.type == "Enum" and field.enum else None,
        precision=(field.precision or 18) if field.type == "Decimal" else None,
        scale=(field.scale if field.scale is not None else 2) if field.type == "Decimal" else None,
        min_length=rules.min_length,
        max_length=rules.max_length,
        min=rules.min,
        max=rules.max,
        pattern=rules.pattern,
        description=field.description,
    )


def desired_state(spec: ExtensionSchemaSpec, refs: ReferenceTypes) -> Desired:
    """Everything *spec* asks the database for, with relationships turned into columns."""
    enums = {e.name: e for e in spec.enums}
    columns: dict[str, list[ColumnDef]] = {t.name: [_column(f, enums) for f in t.fields] for t in spec.tables}
    fks, joins = model.resolve_relationships(spec)
    for fk in fks:
        fk_def = ForeignKeyDef(fk.references, fk.referenced_column, fk.on_delete)
        table_columns = columns.setdefault(fk.table, [])
        at = next((i for i, c in enumerate(table_columns) if c.name == fk.column), None)
        if at is None:
            table_columns.append(
                ColumnDef(fk.column, _referenced_type(fk, spec, refs), unique=fk.unique, foreign_key=fk_def)
            )
        else:
            existing = table_columns[at]
            table_columns[at] = dataclasses.replace(existing, foreign_key=fk_def, unique=existing.unique or fk.unique)
    tables: list[TableDef] = []
    for t in spec.tables:
        tables.append(
            TableDef(
                name=t.name,
                columns=tuple(columns[t.name]),
                unique_together=tuple(IndexDef(tuple(u.fields), True, u.name) for u in t.unique_constraints),
                indexes=tuple(IndexDef(tuple(i.fields), i.unique, i.name) for i in t.indexes),
                description=t.description,
            )
        )
    for join in joins:
        cols = tuple(
            ColumnDef(
                fk.column,
                _referenced_type(fk, spec, refs),
                nullable=False,
                foreign_key=ForeignKeyDef(fk.references, fk.referenced_column, fk.on_delete),
            )
            for fk in (join.left, join.right)
        )
        tables.append(
            TableDef(join.name, cols, unique_together=(IndexDef((join.left.column, join.right.column), True),))
        )
    return Desired(spec.plugin_id, tuple(spec.enums), _creation_order(spec.plugin_id, tables))


def _creation_order(plugin_id: str, tables: Sequence[TableDef]) -> tuple[TableDef, ...]:
    """Referenced tables before referencing ones (a stable topological sort; cycles keep spec order)."""
    by_name = {t.name: t for t in tables}
    ordered: list[TableDef] = []
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(table: TableDef) -> None:
        if table.name in done or table.name in visiting:
            return
        visiting.add(table.name)
        for column in table.columns:
            fk = column.foreign_key
            if fk and fk.references.plugin == plugin_id and fk.references.table in by_name:
                visit(by_name[fk.references.table])
        visiting.discard(table.name)
        done.add(table.name)
        ordered.append(table)

    for table in tables:
        visit(table)
    return tuple(ordered)


# --- Operations -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Op:
    plugin_id: str

    def reverse(self) -> Op:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class CreatePluginNamespace(Op):
    def reverse(self) -> Op:
        return DropPluginNamespace(self.plugin_id)

    def describe(self) -> str:
        return f"create namespace for plugin {self.plugin_id}"


@dataclasses.dataclass(frozen=True)
class DropPluginNamespace(Op):
    def reverse(self) -> Op:
        return CreatePluginNamespace(self.plugin_id)

    def describe(self) -> str:
        return f"drop namespace of plugin {self.plugin_id}"


@dataclasses.dataclass(frozen=True)
class CreateEnum(Op):
    enum: EnumSpec

    def reverse(self) -> Op:
        return DropEnum(self.plugin_id, self.enum)

    def describe(self) -> str:
        return f"create enum {self.enum.name} ({', '.join(self.enum.values)})"


@dataclasses.dataclass(frozen=True)
class DropEnum(Op):
    enum: EnumSpec

    def reverse(self) -> Op:
        return CreateEnum(self.plugin_id, self.enum)

    def describe(self) -> str:
        return f"drop enum {self.enum.name}"


@dataclasses.dataclass(frozen=True)
class ChangeEnumValues(Op):
    """Add (or, as a reverse, remove) enum values; *tables* are those with columns of the enum,
    as they are before and after, for dialects that must rebuild them."""

    before: EnumSpec
    after: EnumSpec
    tables: tuple[tuple[TableDef, TableDef], ...]

    def reverse(self) -> Op:
        return ChangeEnumValues(self.plugin_id, self.after, self.before, tuple((a, b) for b, a in self.tables))

    @property
    def added(self) -> list[str]:
        return [v for v in self.after.values if v not in self.before.values]

    @property
    def removed(self) -> list[str]:
        return [v for v in self.before.values if v not in self.after.values]

    def describe(self) -> str:
        if self.removed:
            return f"remove values {', '.join(self.removed)} from enum {self.after.name}"
        return f"add values {', '.join(self.added)} to enum {self.after.name}"


@dataclasses.dataclass(frozen=True)
class CreateTable(Op):
    table: TableDef

    def reverse(self) -> Op:
        return DropTable(self.plugin_id, self.table)

    def describe(self) -> str:
        return f"create table {self.table.name} ({len(self.table.columns) + 1} columns)"


@dataclasses.dataclass(frozen=True)
class DropTable(Op):
    table: TableDef

    def reverse(self) -> Op:
        return CreateTable(self.plugin_id, self.table)

    def describe(self) -> str:
        return f"drop table {self.table.name}"


@dataclasses.dataclass(frozen=True)
class AddColumn(Op):
    before: TableDef
    after: TableDef
    column: ColumnDef

    def reverse(self) -> Op:
        return DropColumn(self.plugin_id, self.after, self.before, self.column)

    def describe(self) -> str:
        return f"add column {self.before.name}.{self.column.name} ({self.column.type})"


@dataclasses.dataclass(frozen=True)
class DropColumn(Op):
    before: TableDef
    after: TableDef
    column: ColumnDef

    def reverse(self) -> Op:
        return AddColumn(self.plugin_id, self.after, self.before, self.column)

    def describe(self) -> str:
        return f"drop column {self.before.name}.{self.column.name}"


@dataclasses.dataclass(frozen=True)
class CreateIndex(Op):
    table: str
    index: IndexDef

    def reverse(self) -> Op:
        return DropIndex(self.plugin_id, self.table, self.index)

    def describe(self) -> str:
        kind = "unique index" if self.index.unique else "index"
        return f"create {kind} on {self.table} ({', '.join(self.index.columns)})"


@dataclasses.dataclass(frozen=True)
class DropIndex(Op):
    table: str
    index: IndexDef

    def reverse(self) -> Op:
        return CreateIndex(self.plugin_id, self.table, self.index)

    def describe(self) -> str:
        return f"drop index on {self.table} ({', '.join(self.index.columns)})"


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one migration does, and what undoes it."""

    plugin_id: str
    ops: tuple[Op, ...]

    @property
    def empty(self) -> bool:
        return not self.ops

    def reverse(self) -> Plan:
        return Plan(self.plugin_id, tuple(op.reverse() for op in reversed(self.ops)))

    def describe(self) -> list[str]:
        return [op.describe() for op in self.ops]


# --- Diff -------------------------------------------------------------------------------------


def plan(old: ExtensionSchemaSpec | None, new: ExtensionSchemaSpec, refs: ReferenceTypes) -> Plan:
    """The operations that take the database from *old*'s state to *new*'s.

    Raises :class:`ProblemError` (kind ``refused``) listing every change that is not additive.
    """
    after = desired_state(new, refs)
    if old is None:
        return Plan(new.plugin_id, tuple(_create_all(after)))
    before = desired_state(old, refs)
    refusals: list[Problem] = []
    ops: list[Op] = []
    ops.extend(_diff_enums(before, after, new, refusals))
    ops.extend(_diff_tables(before, after, new, refusals))
    if refusals:
        raise ProblemError(refusals, kind="refused")
    return Plan(new.plugin_id, tuple(ops))


def teardown(spec: ExtensionSchemaSpec, refs: ReferenceTypes) -> Plan:
    """Drop everything *spec* created: the reverse of creating it from nothing."""
    return Plan(spec.plugin_id, tuple(_create_all(desired_state(spec, refs)))).reverse()


def _create_all(state: Desired) -> Iterable[Op]:
    yield CreatePluginNamespace(state.plugin_id)
    for enum in state.enums:
        yield CreateEnum(state.plugin_id, enum)
    for table in state.tables:
        yield CreateTable(state.plugin_id, table)
        for index in table.indexes:
            yield CreateIndex(state.plugin_id, table.name, index)


def _table_path(spec: ExtensionSchemaSpec, table: str) -> str:
    """Where a table is declared: ``spec.tables[i]``, or the ManyToMany relationship of a join table."""
    index = next((i for i, t in enumerate(spec.tables) if t.name == table), None)
    if index is not None:
        return f"spec.tables[{index}]"
    _, joins = model.resolve_relationships(spec)
    join = next((j for j in joins if j.name == table), None)
    return f"spec.relationships[{join.relationship}]" if join else "spec.relationships"


def _column_path(spec: ExtensionSchemaSpec, table: str, column: str) -> str:
    """Where a column comes from: its field, the relationship that creates it, or its table's fields."""
    table_path = _table_path(spec, table)
    declared = spec.table(table)
    if declared is not None:
        position = next((i for i, f in enumerate(declared.fields) if f.name == column), None)
        if position is not None:
            return f"{table_path}.fields[{position}]"
    fks, _ = model.resolve_relationships(spec)
    fk = next((f for f in fks if f.table == table and f.column == column), None)
    if fk is not None:
        return f"spec.relationships[{fk.relationship}]"
    return f"{table_path}.fields" if declared is not None else table_path


def _diff_enums(before: Desired, after: Desired, spec: ExtensionSchemaSpec, refusals: list[Problem]) -> list[Op]:
    ops: list[Op] = []
    new_enums = {e.name: e for e in after.enums}
    for old_enum in before.enums:
        if old_enum.name not in new_enums:
            refusals.append(
                Problem(
                    "ES301",
                    "spec.enums",
                    f"enum {old_enum.name!r} was removed; removing enums is not supported yet — put it back",
                )
            )
    for index, enum in enumerate(after.enums):
        previous = next((e for e in before.enums if e.name == enum.name), None)
        if previous is None:
            ops.append(CreateEnum(spec.plugin_id, enum))
            continue
        if previous.values == enum.values:
            continue
        kept = [v for v in enum.values if v in previous.values]
        if kept != list(previous.values):
            refusals.append(
                Problem(
                    "ES301",
                    f"spec.enums[{index}].values",
                    f"enum {enum.name!r} values were removed or reordered ({', '.join(previous.values)} → "
                    f"{', '.join(enum.values)}); only adding values is supported — keep the existing values in order",
                )
            )
            continue
        affected = tuple(
            (t, t.with_enum(enum)) for t in before.tables if t.uses_enum(enum.name) and after.table(t.name)
        )
        ops.append(ChangeEnumValues(spec.plugin_id, previous, enum, affected))
    return ops


def _diff_tables(before: Desired, after: Desired, spec: ExtensionSchemaSpec, refusals: list[Problem]) -> list[Op]:
    ops: list[Op] = []
    for old_table in before.tables:
        if after.table(old_table.name) is None:
            refusals.append(
                Problem(
                    "ES301",
                    "spec.tables",
                    f"table {old_table.name!r} was removed; dropping tables of a registered plugin is not supported "
                    "yet — put it back, or delete the whole plugin",
                )
            )
    for table in after.tables:
        old = before.table(table.name)
        if old is None:
            ops.append(CreateTable(spec.plugin_id, table))
            ops.extend(CreateIndex(spec.plugin_id, table.name, i) for i in table.indexes)
            continue
        path = _table_path(spec, table.name)
        # Enum value changes were planned already; compare against the enum-updated old table.
        current = old
        for enum in after.enums:
            current = current.with_enum(enum)
        for column in current.columns:
            new_column = table.column(column.name)
            if new_column is None:
                refusals.append(
                    Problem(
                        "ES301",
                        _column_path(spec, table.name, column.name),
                        f"field {table.name}.{column.name} was removed; dropping columns is not supported yet — put "
                        "it back",
                    )
                )
            elif new_column != column:
                refusals.append(
                    Problem(
                        "ES301",
                        _column_path(spec, table.name, column.name),
                        f"field {table.name}.{column.name} changed ({_changes(column, new_column)}); changing "
                        "fields is not supported yet — revert it, or add a new field",
                    )
                )
        for column in table.columns:
            if current.column(column.name) is not None:
                continue
            if not column.nullable and column.default is None:
                refusals.append(
                    Problem(
                        "ES302",
                        _column_path(spec, table.name, column.name),
                        f"new required field {table.name}.{column.name} has no default, so existing rows would have "
                        "no value; give it a default, or make it not required",
                    )
                )
                continue
            grown = dataclasses.replace(current, columns=(*current.columns, column))
            ops.append(AddColumn(spec.plugin_id, current, grown, column))
            current = grown
        for attr, label in (("unique_together", "uniqueConstraints"), ("indexes", "indexes")):
            old_items: tuple[IndexDef, ...] = getattr(old, attr)
            new_items: tuple[IndexDef, ...] = getattr(table, attr)
            for item in old_items:
                if item not in new_items:
                    refusals.append(
                        Problem(
                            "ES301",
                            f"{path}.{label}",
                            f"{label} entry on ({', '.join(item.columns)}) of {table.name} was removed or changed; "
                            "only adding is supported yet — put it back",
                        )
                    )
            for item in new_items:
                if item not in old_items:
                    unique = item if attr == "indexes" else dataclasses.replace(item, unique=True)
                    ops.append(CreateIndex(spec.plugin_id, table.name, unique))
    return ops


def _changes(old: ColumnDef, new: ColumnDef) -> str:
    fields = [f.name for f in dataclasses.fields(ColumnDef) if getattr(old, f.name) != getattr(new, f.name)]
    return ", ".join(
        f"{name}: {getattr(old, name)!r} → {getattr(new, name)!r}" if name != "enum" else "enum" for name in fields
    )
