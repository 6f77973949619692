"""Renames a new spec declares — ``renamedFrom`` on tables and fields, ``renamedValues`` on enums —
as RENAME operations, so data is kept, never dropped and re-added.

A rename applies when the schema before has the previous name and not the new one; once applied
(the schema before already has the new name) the declaration is history and ignored, so a spec
may keep it for any number of versions.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping, Sequence

from extschema.model import EnumSpec, ExtensionSchemaSpec
from extschema.planning import versions
from extschema.planning.changes import ColumnRenamed, EnumValueRenamed, TableRenamed
from extschema.planning.diff.run import Run
from extschema.planning.ops import RenameColumn, RenameEnumValue, RenameTable
from extschema.planning.resolved import ForeignKeyDef, IndexDef, TableDef
from extschema.planning.state import retarget_column, retarget_table


@dataclasses.dataclass(frozen=True)
class Renames:
    """What a spec says was renamed, with where it says so."""

    #: new table name -> (previous name, path)
    tables: Mapping[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    #: (table, new field name) -> (previous name, path); the table by its new name
    columns: Mapping[tuple[str, str], tuple[str, str]] = dataclasses.field(default_factory=dict)
    #: enum -> ((previous value, new value, path), ...)
    values: Mapping[str, tuple[tuple[str, str, str], ...]] = dataclasses.field(default_factory=dict)


def declared(spec: ExtensionSchemaSpec) -> Renames:
    """The renames *spec* declares."""
    tables: dict[str, tuple[str, str]] = {}
    columns: dict[tuple[str, str], tuple[str, str]] = {}
    for t_index, table in enumerate(spec.tables):
        if table.renamed_from is not None:
            tables[table.name] = (table.renamed_from, f"spec.tables[{t_index}].renamedFrom")
        for f_index, field in enumerate(table.fields):
            if field.renamed_from is not None:
                path = f"spec.tables[{t_index}].fields[{f_index}].renamedFrom"
                columns[(table.name, field.name)] = (field.renamed_from, path)
    values = {
        enum.name: tuple(
            (old, new, f"spec.enums[{e_index}].renamedValues.{old}") for old, new in enum.renamed_values.items()
        )
        for e_index, enum in enumerate(spec.enums)
        if enum.renamed_values
    }
    return Renames(tables, columns, values)


def between(old: ExtensionSchemaSpec, new: ExtensionSchemaSpec) -> Renames:
    """The renames a plan from *old* to *new* considers: those *new* declares, and for a lower
    version (going back) also those *old* declared, reversed (:func:`undone`)."""
    return undone(old, new) if versions.compare(new.version, old.version) < 0 else declared(new)


def followed(specs: Sequence[ExtensionSchemaSpec], table: str, column: str | None) -> tuple[str, str | None]:
    """What *table* (and its *column*) of ``specs[0]`` is called in ``specs[-1]``, following the
    renames each spec made of the one before it (a name its successor no longer has)."""
    for old, new in itertools.pairwise(specs):
        found = between(old, new)
        tables = {t.name: t for t in new.tables}
        renamed_to = [n for n, (was, _path) in found.tables.items() if was == table and n in tables]
        if table not in tables and len(renamed_to) == 1:
            table = renamed_to[0]
        fields = {f.name for f in tables[table].fields} if table in tables else set()
        if column is not None and column not in fields:
            moved = [n for (t, n), (was, _p) in found.columns.items() if (t, was) == (table, column) and n in fields]
            column = moved[0] if len(moved) == 1 else column
    return table, column


def undone(applied: ExtensionSchemaSpec, target: ExtensionSchemaSpec) -> Renames:
    """The renames *applied* declares, reversed, together with those *target* declares: going back
    to a lower version (*target*) renames back what the newer one renamed, so its rows stay.

    Each reversal applies under the usual rule (the schema has the new name and not the previous one),
    so a rename the applied schema never carried out reverses nothing."""
    forward, tables, columns = declared(applied), dict(declared(target).tables), dict(declared(target).columns)
    # Only back to a name the target has: a rename of an intermediate version is no way back.
    fields = {(t.name, f.name) for t in target.tables for f in t.fields}
    enums = {(e.name, v) for e in target.enums for v in e.values}
    back = {new: old for new, (old, _path) in forward.tables.items() if any(t.name == old for t in target.tables)}
    for new, old in back.items():
        tables.setdefault(old, (new, forward.tables[new][1]))
    for (table, new), (old, path) in forward.columns.items():
        if (back.get(table, table), old) in fields:
            columns.setdefault((back.get(table, table), old), (new, path))
    values = dict(declared(target).values)
    for enum, pairs in forward.values.items():
        undo = tuple((new, old, path) for old, new, path in pairs if (enum, old) in enums)
        values[enum] = (*values.get(enum, ()), *undo)
    return Renames(tables, columns, values)


def diff(run: Run, renamed: Renames, joins: Iterable[str] = ()) -> None:
    """Declared renames, and those they imply: a join table or a relationship's column whose
    default name follows a renamed table (*joins*: the join tables of the schema before)."""
    for new, (old, path) in renamed.tables.items():
        _rename_table(run, old, new, path)
    _implied_join_tables(run, frozenset(joins))
    for (table_name, new), (old, path) in renamed.columns.items():
        table = run.state.table(table_name)
        if table is not None and table.column(old) is not None and table.column(new) is None:
            _rename_column(run, table, old, new, path)
    _implied_fk_columns(run)
    for enum_name, pairs in renamed.values.items():
        for old, new, path in pairs:
            enum = run.state.enum(enum_name)
            if enum is not None and old in enum.values and new not in enum.values:
                run.add(
                    EnumValueRenamed(
                        path=path, enum=enum_name, old=old, new=new, ops=(_rename_value(run, enum, old, new),)
                    )
                )


def _rename_table(run: Run, old: str, new: str, path: str) -> None:
    table = run.state.table(old)
    if table is not None and run.state.table(new) is None:
        after = retarget_table(dataclasses.replace(table, name=new), run.plugin_id, old, new)
        run.add(TableRenamed(path=path, old=old, new=new, ops=(RenameTable(run.plugin_id, table, after),)))


def _rename_column(run: Run, table: TableDef, old: str, new: str, path: str) -> None:
    op = RenameColumn(run.plugin_id, table, rename_column(table, run.plugin_id, old, new), old, new)
    run.add(ColumnRenamed(path=path, table=table.name, old=old, new=new, ops=(op,)))


def _targets(table: TableDef) -> list[tuple[str, str, str]]:
    """Where *table*'s foreign keys point: (plugin, table, column) each, in column order."""
    return [
        (c.foreign_key.references.plugin, c.foreign_key.references.table, c.foreign_key.column)
        for c in table.columns
        if c.foreign_key is not None
    ]


def _implied_join_tables(run: Run, joins: frozenset[str]) -> None:
    """A ManyToMany's join table named after a renamed table: the old join table — gone from the
    new schema, pointing at the same tables — is renamed, when exactly one matches."""
    for join in run.after.joins:
        if run.state.table(join.name) is not None:
            continue
        wanted = _targets(run.after.table(join.name) or TableDef(join.name, ()))
        candidates = [
            t.name
            for t in run.state.tables
            if t.name in joins and run.after.table(t.name) is None and _targets(t) == wanted
        ]
        if len(candidates) == 1:
            _rename_table(run, candidates[0], join.name, f"spec.relationships[{join.relationship}]")


def _implied_fk_columns(run: Run) -> None:
    """A relationship's column named after a renamed table (``customer_id`` → ``client_id``): the
    old column — gone from the new table, referencing the same column of the renamed table — is
    renamed. Columns pair up in order when a table has several such (both sides of a
    self-referencing join table)."""
    renamed = {(run.plugin_id, c.new) for c in run.found if isinstance(c, TableRenamed)}
    for new_table in run.after.tables:
        table = run.state.table(new_table.name)
        if table is None:
            continue
        gone = [c for c in table.columns if c.foreign_key is not None and new_table.column(c.name) is None]
        for column in new_table.columns:
            fk = column.foreign_key
            if fk is None or (fk.references.plugin, fk.references.table) not in renamed:
                continue
            if table.column(column.name) is not None or _declared(run, new_table.name, column.name):
                continue
            matches = [c for c in gone if c.foreign_key is not None and _same_target(c.foreign_key, fk)]
            if matches:
                gone.remove(matches[0])
                path = run.after.origins.column(new_table.name, column.name)
                _rename_column(run, run.table(new_table.name), matches[0].name, column.name, path)


def _declared(run: Run, table: str, column: str) -> bool:
    """Whether *column* is a field the spec declares (its renames are declared, never implied)."""
    return ".fields[" in run.after.origins.columns.get((table, column), "")


def _same_target(a: ForeignKeyDef, b: ForeignKeyDef) -> bool:
    return (a.references, a.column) == (b.references, b.column)


def rename_column(table: TableDef, plugin_id: str, old: str, new: str) -> TableDef:
    """*table* with column *old* named *new*, in its indexes, constraints and self-references too."""

    def columns_of(index: IndexDef) -> IndexDef:
        return dataclasses.replace(index, columns=tuple(new if c == old else c for c in index.columns))

    renamed = dataclasses.replace(
        table,
        columns=tuple(dataclasses.replace(c, name=new) if c.name == old else c for c in table.columns),
        indexes=tuple(map(columns_of, table.indexes)),
        unique_together=tuple(map(columns_of, table.unique_together)),
    )
    return retarget_column(renamed, plugin_id, table.name, old, new)


def _rename_value(run: Run, enum: EnumSpec, old: str, new: str) -> RenameEnumValue:
    after = enum.model_copy(update={"values": [new if v == old else v for v in enum.values]})
    tables = []
    for table in run.state.tables:
        if table.uses_enum(enum.name):
            columns = tuple(
                dataclasses.replace(c, default=new) if c.default == old and c.enum and c.enum.name == enum.name else c
                for c in table.with_enum(after).columns
            )
            tables.append((table, dataclasses.replace(table, columns=columns)))
    return RenameEnumValue(run.plugin_id, enum, after, old, new, tuple(tables))
