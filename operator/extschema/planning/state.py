"""A plugin's schema as a value that operations advance, one at a time.

The planner threads a :class:`State` through the plan it builds, so that every operation carries
the tables exactly as they are when it runs (a SQLite rebuild copies *before* into *after*), and
tests replay a plan on the previous schema to check that it reaches the new one — and that its
reverse comes back.

Shapes, not objects: a column of an enum keeps the enum's :class:`~extschema.model.EnumSpec`,
whose localization and ``renamedValues`` are not part of what the database holds. :func:`shape`
and :func:`table_shape` keep only what is (an enum's name and values), and every comparison here
goes through them — a spec that still carries ``renamedValues`` from an earlier version does not
look changed.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable, Iterable

from extschema.model import EnumSpec, TargetRef
from extschema.planning import ops
from extschema.planning.ops import Op
from extschema.planning.resolved import ColumnDef, ForeignKeyDef, IndexDef, Resolved, TableDef, replace_column


def enum_shape(enum: EnumSpec) -> tuple[str, tuple[str, ...]]:
    """What the database holds of an enum: its name and values, in order."""
    return enum.name, tuple(enum.values)


def shape(column: ColumnDef, reduced: dict[int, EnumSpec] | None = None) -> ColumnDef:
    """*column* with its enum reduced to name and values (see the module's docstring); *reduced*
    keeps each enum's reduced form by ``id`` for one comparison (columns share their enum object)."""
    enum = column.enum
    if enum is None or (not enum.renamed_values and not enum.localization):
        return column
    found = reduced.get(id(enum)) if reduced is not None else None
    if found is None:
        found = EnumSpec(name=enum.name, values=list(enum.values))
        if reduced is not None:
            reduced[id(enum)] = found
    return replace_column(column, enum=found)


def table_shape(table: TableDef, reduced: dict[int, EnumSpec] | None = None) -> TableDef:
    """*table* with every column reduced by :func:`shape`, columns in name order (a column added
    to an existing table lands at its end, wherever the spec lists it), and its unique constraints
    among its indexes, in order (a constraint added to an existing table is a unique index)."""
    reduced = {} if reduced is None else reduced
    columns = tuple(sorted((shape(c, reduced) for c in table.columns), key=lambda c: c.name))
    declared = {*table.indexes, *(dataclasses.replace(u, unique=True) for u in table.unique_together)}
    indexes = tuple(sorted(declared, key=lambda i: (i.columns, i.unique, i.name or "")))
    return dataclasses.replace(table, columns=columns, indexes=indexes, unique_together=())


#: What :func:`same_column` compares besides the enum (whose name and values it compares).
_COMPARED = operator.attrgetter(*(f.name for f in dataclasses.fields(ColumnDef) if f.compare and f.name != "enum"))


def same_column(a: ColumnDef, b: ColumnDef) -> bool:
    """``shape(a) == shape(b)``, without building the shapes (a diff compares every column)."""
    if a is b:
        return True
    if (a.enum is None) != (b.enum is None):
        return False
    if a.enum is not None and b.enum is not None and enum_shape(a.enum) != enum_shape(b.enum):
        return False
    return bool(_COMPARED(a) == _COMPARED(b))


@dataclasses.dataclass(frozen=True)
class State:
    """Enums and tables of one plugin, in creation order."""

    plugin_id: str
    enums: tuple[EnumSpec, ...] = ()
    tables: tuple[TableDef, ...] = ()
    #: Whether the plugin's namespace exists (a plan from nothing creates it first).
    namespace: bool = True

    @classmethod
    def of(cls, resolved: Resolved) -> State:
        return cls(resolved.plugin_id, resolved.enums, resolved.tables)

    @classmethod
    def empty(cls, plugin_id: str) -> State:
        return cls(plugin_id, namespace=False)

    def table(self, name: str) -> TableDef | None:
        return self._by_name.get(name)

    @functools.cached_property
    def _by_name(self) -> dict[str, TableDef]:
        # A plan looks tables up once per column it compares: index them (a state never changes).
        return {t.name: t for t in self.tables}

    def enum(self, name: str) -> EnumSpec | None:
        return next((e for e in self.enums if e.name == name), None)

    def shape(self) -> tuple[bool, dict[str, tuple[str, ...]], dict[str, TableDef]]:
        """What the database holds, for comparing states whatever order things were created in."""
        reduced: dict[int, EnumSpec] = {}
        return (
            self.namespace,
            dict(map(enum_shape, self.enums)),
            {t.name: table_shape(t, reduced) for t in self.tables},
        )

    # --- advancing ------------------------------------------------------------------------------

    def with_table(self, table: TableDef, replacing: str | None = None) -> State:
        """*table* replacing the table named *replacing* (default: its own name) in place."""
        name = table.name if replacing is None else replacing
        return dataclasses.replace(self, tables=tuple(table if t.name == name else t for t in self.tables))

    def with_tables(self, tables: Iterable[TableDef]) -> State:
        """Each of *tables* replacing the table of its name."""
        by_name = {t.name: t for t in tables}
        return dataclasses.replace(self, tables=tuple(by_name.get(t.name, t) for t in self.tables))

    def with_enum(self, enum: EnumSpec) -> State:
        """*enum* replacing the enum of its name, and every column of it seeing its values."""
        return dataclasses.replace(
            self,
            enums=tuple(enum if e.name == enum.name else e for e in self.enums),
            tables=tuple(t.with_enum(enum) if t.uses_enum(enum.name) else t for t in self.tables),
        )

    def apply(self, op: Op) -> State:
        """The state after *op*; ``ValueError`` when *op* does not start from this state (what it
        says the tables or enums are before it runs is not what they are)."""
        match op:
            case ops.CreatePluginNamespace():
                return dataclasses.replace(self, namespace=True)
            case ops.DropPluginNamespace():
                self._expect(not self.tables and not self.enums, op, "the namespace is not empty")
                return dataclasses.replace(self, namespace=False)
            case ops.CreateEnum():
                self._expect(self.enum(op.enum.name) is None, op, "the enum exists")
                return dataclasses.replace(self, enums=(*self.enums, op.enum))
            case ops.DropEnum():
                self._expect_enum(op.enum, op)
                self._expect(not any(t.uses_enum(op.enum.name) for t in self.tables), op, "a column uses the enum")
                return dataclasses.replace(self, enums=tuple(e for e in self.enums if e.name != op.enum.name))
            case ops.ChangeEnumValues() | ops.RenameEnumValue():
                self._expect_enum(op.before, op)
                for before, _after in op.tables:
                    self._expect_table(before, op)
                changed = self.with_enum(op.after)
                return changed.with_tables(after for _before, after in op.tables)
            case ops.CreateTable():
                # Its declared indexes come with CreateIndex operations of their own.
                self._expect(self.table(op.table.name) is None, op, "the table exists")
                return dataclasses.replace(self, tables=(*self.tables, dataclasses.replace(op.table, indexes=())))
            case ops.DropTable():
                # Dropping a table drops its indexes, whether the operation lists them or not.
                actual = self._existing(op.table.name, op)
                expected = dataclasses.replace(op.table, indexes=actual.indexes)
                self._expect(table_shape(actual) == table_shape(expected), op, "table is not as expected")
                return dataclasses.replace(self, tables=tuple(t for t in self.tables if t.name != op.table.name))
            case ops.RenameColumn():
                self._expect_table(op.before, op)
                others = (
                    retarget_column(t, self.plugin_id, op.after.name, op.old, op.new)
                    for t in self.tables
                    if t.name != op.after.name
                )
                return self.with_table(op.after).with_tables(others)
            case ops.AddColumn() | ops.DropColumn() | ops.AlterColumn():
                self._expect_table(op.before, op)
                return self.with_table(op.after)
            case ops.RenameTable():
                self._expect_table(op.before, op)
                self._expect(self.table(op.after.name) is None, op, "a table of the new name exists")
                others = (
                    retarget_table(t, self.plugin_id, op.before.name, op.after.name)
                    for t in self.tables
                    if t.name != op.before.name
                )
                return self.with_table(op.after, replacing=op.before.name).with_tables(others)
            case ops.CreateIndex():
                table = self._existing(op.table, op)
                self._expect(op.index not in _declared(table), op, "the index exists")
                return self.with_table(_with_index(table, op.index, add=True))
            case ops.DropIndex():
                table = self._existing(op.table, op)
                self._expect(_matches(op.index, table), op, "no such index")
                return self.with_table(_with_index(table, op.index, add=False))
            case ops.RunSql():
                return self
        raise ValueError(f"{type(op).__name__} has no effect on a schema model")

    def apply_all(self, operations: Iterable[Op]) -> State:
        state = self
        for op in operations:
            state = state.apply(op)
        return state

    def _expect(self, condition: bool, op: Op, why: str) -> None:
        if not condition:
            raise ValueError(f"{op.describe()}: {why}")

    def _existing(self, name: str, op: Op) -> TableDef:
        table = self.table(name)
        if table is None:
            raise ValueError(f"{op.describe()}: no table {name}")
        return table

    def _expect_table(self, expected: TableDef, op: Op) -> None:
        actual = self._existing(expected.name, op)
        self._expect(table_shape(actual) == table_shape(expected), op, f"table {expected.name} is not as expected")

    def _expect_enum(self, expected: EnumSpec, op: Op) -> None:
        actual = self.enum(expected.name)
        self._expect(actual is not None and enum_shape(actual) == enum_shape(expected), op, "enum is not as expected")


def _declared(table: TableDef) -> tuple[IndexDef, ...]:
    return (*table.indexes, *table.unique_together)


def _matches(index: IndexDef, table: TableDef) -> bool:
    return index in table.indexes or dataclasses.replace(index, unique=True) in table.unique_together


def _with_index(table: TableDef, index: IndexDef, add: bool) -> TableDef:
    """*table* with *index* among (or removed from) its declared indexes. A unique index dropped
    may be a unique constraint (constraints are created as unique indexes)."""
    if add:
        return dataclasses.replace(table, indexes=(*table.indexes, index))
    if index in table.indexes:
        return dataclasses.replace(table, indexes=tuple(i for i in table.indexes if i != index))
    return dataclasses.replace(
        table, unique_together=tuple(u for u in table.unique_together if u != dataclasses.replace(index, unique=True))
    )


def retarget_table(table: TableDef, plugin_id: str, old: str, new: str) -> TableDef:
    """*table* with its foreign keys to this plugin's table *old* pointing at *new* (databases
    follow a renamed table: PostgreSQL by identity, SQLite by rewriting the referencing tables)."""
    return _retarget(table, plugin_id, old, lambda fk: dataclasses.replace(fk, references=_renamed(fk.references, new)))


def retarget_column(table: TableDef, plugin_id: str, target: str, old: str, new: str) -> TableDef:
    """*table* with its foreign keys to column *old* of this plugin's table *target* naming *new*."""
    return _retarget(
        table, plugin_id, target, lambda fk: dataclasses.replace(fk, column=new) if fk.column == old else fk
    )


def _renamed(ref: TargetRef, table: str) -> TargetRef:
    return TargetRef(plugin=ref.plugin, table=table)


def _retarget(
    table: TableDef, plugin_id: str, target: str, change: Callable[[ForeignKeyDef], ForeignKeyDef]
) -> TableDef:
    columns: list[ColumnDef] = []
    for column in table.columns:
        fk = column.foreign_key
        if fk is not None and fk.references.plugin == plugin_id and fk.references.table == target:
            changed = change(fk)
            if changed != fk:
                column = dataclasses.replace(column, foreign_key=changed)
        columns.append(column)
    return dataclasses.replace(table, columns=tuple(columns)) if columns != list(table.columns) else table
