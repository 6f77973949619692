"""The resolved schema of a spec: every table, column and index it asks the database for.

Relationships become FK columns and join tables here, once, and every reader — conflict
detection, planning, the dialects (and later drift and generators) — works from the same result
instead of re-deriving it from the spec.

Resolution depends on the spec and, for FK columns referencing tables outside the spec, on the
types of the referenced columns (*refs*). It is cached per spec *object* (specs are frozen, so an
object's content never changes) and, within that, per the types actually looked up in *refs*: a
different or since-mutated *refs* that yields other types gets its own result, one that yields
the same types gets the same object. The cache holds specs weakly and forgets them with the spec.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from extschema import limits, model
from extschema.model import EnumSpec, ExtensionSchemaSpec, FieldType, ForeignKey, JoinTable, TargetRef
from extschema.naming import Namer
from extschema.problems import ProblemError

#: The type of every surrogate key.
ID_TYPE: FieldType = "BigInt"


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_N = TypeVar("_N", bound=_Named)


def _by_name(items: Iterable[_N]) -> dict[str, _N]:
    """*items* by name; the first of a duplicated name, as a search would find it."""
    found: dict[str, _N] = {}
    for item in items:
        found.setdefault(item.name, item)
    return found


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
        return self.max_length or limits.DEFAULT_STRING_LENGTH


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
        return self._by_name.get(name)

    @functools.cached_property
    def _by_name(self) -> dict[str, ColumnDef]:
        # A diff looks up every column of every table, often several times: index them once (a TableDef never changes).
        return _by_name(self.columns)

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
            replace_column(c, enum=enum) if c.enum is not None and c.enum.name == enum.name else c for c in self.columns
        )
        return dataclasses.replace(self, columns=columns)

    def uses_enum(self, enum_name: str) -> bool:
        return any(c.enum is not None and c.enum.name == enum_name for c in self.columns)


@dataclasses.dataclass(frozen=True)
class Origins:
    """Where each table and column of a resolved schema is declared in its spec, for error paths."""

    tables: Mapping[str, str]
    columns: Mapping[tuple[str, str], str]
    declared: frozenset[str]  # tables of spec.tables (the others are join tables)

    def table(self, table: str) -> str:
        """``spec.tables[i]``, or the ManyToMany relationship of a join table."""
        return self.tables.get(table, "spec.relationships")

    def column(self, table: str, column: str) -> str:
        """The column's field, the relationship that creates it, or else its table's fields."""
        found = self.columns.get((table, column))
        if found is not None:
            return found
        return f"{self.table(table)}.fields" if table in self.declared else self.table(table)


@dataclasses.dataclass(frozen=True)
class Resolved:
    """Everything one spec asks the database for, with relationships turned into columns."""

    plugin_id: str
    enums: tuple[EnumSpec, ...]
    tables: tuple[TableDef, ...]  # in creation order: referenced tables first
    # How the spec was resolved (same spec, same values): not part of what the database gets.
    foreign_keys: tuple[ForeignKey, ...] = dataclasses.field(compare=False, repr=False)
    joins: tuple[JoinTable, ...] = dataclasses.field(compare=False, repr=False)
    origins: Origins = dataclasses.field(compare=False, repr=False)

    def table(self, name: str) -> TableDef | None:
        return self._by_name.get(name)

    @functools.cached_property
    def _by_name(self) -> dict[str, TableDef]:
        # Frozen and shared by every reader, so the index is built once.
        return _by_name(self.tables)

    def references(self) -> tuple[ForeignKey, ...]:
        """Every FK the spec creates: FK columns of its tables, then both sides of each join table."""
        return _references(self.foreign_keys, self.joins)

    def physical_tables(self, namer: Namer) -> list[str]:
        """The physical tables the spec owns (its tables and join tables), as the registry lists them."""
        return [str(namer.table(self.plugin_id, t.name)) for t in self.tables]


#: ``(plugin, table) -> {column: FieldType}`` for every table a spec may reference outside
#: itself: core tables (reflected) and other plugins' tables (from their registered specs).
ReferenceTypes = Mapping[tuple[str, str], Mapping[str, FieldType | None]]


def reference_types_of(spec: ExtensionSchemaSpec) -> dict[tuple[str, str], dict[str, FieldType | None]]:
    """The column types a plugin offers to plugins that depend on it: ``id`` and declared fields."""
    return {(spec.plugin_id, t.name): {"id": ID_TYPE, **{f.name: f.type for f in t.fields}} for t in spec.tables}


def resolve(spec: ExtensionSchemaSpec, refs: ReferenceTypes) -> Resolved:
    """The resolved schema of *spec*; raises ES204 (``conflict``) for a reference that does not resolve."""
    return _entry(spec).bind(spec, refs)


def shape(spec: ExtensionSchemaSpec) -> Resolved:
    """The resolved schema with columns referencing other plugins or the core typed :data:`ID_TYPE`.

    For what does not depend on those types — names, indexes, origins, foreign keys — before
    the references are known to resolve (conflict detection reports the ones that do not).
    """
    return _entry(spec).bind(spec, None)


# --- cache ------------------------------------------------------------------------------------


class _Entry:
    """What resolving one spec object needs besides *refs*, and its results per looked-up types."""

    def __init__(self, spec: ExtensionSchemaSpec) -> None:
        fks, joins = model.resolve_relationships(spec)
        self.foreign_keys = tuple(fks)
        self.joins = tuple(joins)
        self.references = _references(fks, joins)
        self.bound: dict[tuple[FieldType | None, ...], Resolved] = {}

    def bind(self, spec: ExtensionSchemaSpec, refs: ReferenceTypes | None) -> Resolved:
        types = tuple(_referenced_type(fk, spec, refs) for fk in self.references)
        found = self.bound.get(types)
        if found is None:
            found = self.bound[types] = _build(spec, self.foreign_keys, self.joins, types)
        return found


def _references(fks: Sequence[ForeignKey], joins: Sequence[JoinTable]) -> tuple[ForeignKey, ...]:
    return (*fks, *(side for join in joins for side in (join.left, join.right)))


# Keyed by id(): specs hold lists, so they are not hashable. The weak reference tells a live
# entry from one whose spec died and left its id to a newer object. No lock: dict operations are
# atomic, and a lost race only costs one recomputation (a lock could deadlock if the garbage
# collector ran a weakref callback while this thread held it).
_CACHE: dict[int, tuple[weakref.ref[ExtensionSchemaSpec], _Entry]] = {}


def _entry(spec: ExtensionSchemaSpec) -> _Entry:
    key = id(spec)
    found = _CACHE.get(key)
    if found is not None and found[0]() is spec:
        return found[1]
    entry = _Entry(spec)

    def forget(ref: weakref.ref[ExtensionSchemaSpec]) -> None:
        current = _CACHE.get(key)
        if current is not None and current[0] is ref:
            _CACHE.pop(key, None)

    _CACHE[key] = (weakref.ref(spec, forget), entry)
    return entry


def cached_specs() -> int:
    """How many spec objects have a cached resolution (for tests: the cache must not keep specs alive)."""
    return len(_CACHE)


# --- building -----------------------------------------------------------------------------------


def _referenced_type(fk: ForeignKey, spec: ExtensionSchemaSpec, refs: ReferenceTypes | None) -> FieldType | None:
    """The type of the column *fk* references, None when it does not exist (or cannot be
    referenced); without *refs*, :data:`ID_TYPE` for anything outside the spec."""
    target = fk.references
    if target.plugin == spec.plugin_id:
        if fk.referenced_column == "id":
            return ID_TYPE
        table = spec.table(target.table)
        field = table.field(fk.referenced_column) if table else None
        return field.type if field is not None else None
    if refs is None:
        return ID_TYPE
    return refs.get((target.plugin, target.table), {}).get(fk.referenced_column)


def _required_type(fk: ForeignKey, found: FieldType | None) -> FieldType:
    if found is not None:
        return found
    raise ProblemError.one(
        "ES204",
        f"spec.relationships[{fk.relationship}]",
        f"{fk.references}.{fk.referenced_column} does not exist (or has a type extschema cannot reference); "
        "point the relationship at an existing column",
        kind="conflict",
    )


#: The rules of a field without any (built once: a pydantic model is not free to build).
_NO_RULES = model.ValidationRules()


def replace_column(column: ColumnDef, **changes: Any) -> ColumnDef:
    """``dataclasses.replace(column, **changes)`` without the frozen ``__init__`` (see :func:`_column`):
    a plan replaces the enum of every column of an enum whose values it changes."""
    replaced: ColumnDef = object.__new__(ColumnDef)
    replaced.__dict__.update(column.__dict__, **changes)
    return replaced


#: Every field of a ColumnDef at its default, for :func:`_column`.
_COLUMN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ColumnDef) if f.default is not dataclasses.MISSING}


def _column(field: model.FieldSpec, enums: Mapping[str, EnumSpec]) -> ColumnDef:
    rules = field.validation or _NO_RULES
    decimal = field.type == "Decimal"
    # Filled in directly: a frozen dataclass's __init__ sets each of its 15 fields through
    # object.__setattr__, which made building the columns of a 200-table spec half of resolving it.
    column: ColumnDef = object.__new__(ColumnDef)
    values = column.__dict__
    values.update(_COLUMN_DEFAULTS)
    values.update(
        name=field.name,
        type=field.type,
        nullable=not field.required,
        unique=field.unique,
        default=field.default,
        enum=enums.get(field.enum) if field.type == "Enum" and field.enum else None,
        precision=(field.precision or limits.DEFAULT_PRECISION) if decimal else None,
        scale=(limits.DEFAULT_SCALE if field.scale is None else field.scale) if decimal else None,
        min_length=rules.min_length,
        max_length=rules.max_length,
        min=rules.min,
        max=rules.max,
        pattern=rules.pattern,
        description=field.description,
    )
    return column


def _build(
    spec: ExtensionSchemaSpec,
    fks: Sequence[ForeignKey],
    joins: Sequence[JoinTable],
    types: Sequence[FieldType | None],
) -> Resolved:
    """Resolve *spec*, given the referenced type of each FK (in :meth:`_Entry.references` order)."""
    enums = {e.name: e for e in spec.enums}
    columns: dict[str, list[ColumnDef]] = {t.name: [_column(f, enums) for f in t.fields] for t in spec.tables}
    for fk, found in zip(fks, types[: len(fks)], strict=True):
        fk_def = ForeignKeyDef(fk.references, fk.referenced_column, fk.on_delete)
        table_columns = columns.setdefault(fk.table, [])
        at = next((i for i, c in enumerate(table_columns) if c.name == fk.column), None)
        if at is None:
            table_columns.append(ColumnDef(fk.column, _required_type(fk, found), unique=fk.unique, foreign_key=fk_def))
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
    join_types = iter(types[len(fks) :])
    for join in joins:
        cols = tuple(
            ColumnDef(
                fk.column,
                _required_type(fk, next(join_types)),
                nullable=False,
                foreign_key=ForeignKeyDef(fk.references, fk.referenced_column, fk.on_delete),
            )
            for fk in (join.left, join.right)
        )
        tables.append(
            TableDef(join.name, cols, unique_together=(IndexDef((join.left.column, join.right.column), True),))
        )
    return Resolved(
        spec.plugin_id,
        tuple(spec.enums),
        _creation_order(spec.plugin_id, tables),
        tuple(fks),
        tuple(joins),
        _origins(spec, fks, joins),
    )


def _origins(spec: ExtensionSchemaSpec, fks: Sequence[ForeignKey], joins: Sequence[JoinTable]) -> Origins:
    tables: dict[str, str] = {}
    for index, table in enumerate(spec.tables):
        tables.setdefault(table.name, f"spec.tables[{index}]")
    for join in joins:
        tables.setdefault(join.name, f"spec.relationships[{join.relationship}]")
    columns: dict[tuple[str, str], str] = {}
    declared_tables = spec.tables_by_name()
    for table_name in tables:
        declared = declared_tables.get(table_name)
        for position, field in enumerate(declared.fields if declared else ()):
            columns.setdefault((table_name, field.name), f"{tables[table_name]}.fields[{position}]")
    for fk in fks:
        columns.setdefault((fk.table, fk.column), f"spec.relationships[{fk.relationship}]")
    # Read-only: a resolved schema is shared by every reader of the spec.
    spec_tables = frozenset(t.name for t in spec.tables)
    return Origins(types.MappingProxyType(tables), types.MappingProxyType(columns), spec_tables)


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
