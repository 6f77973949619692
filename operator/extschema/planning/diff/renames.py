"""Renames a new spec declares — ``renamedFrom`` on tables and fields, ``renamedValues`` on enums —
as RENAME operations, so data is kept, never dropped and re-added.

A rename applies when the schema before has the previous name and not the new one; once applied
(the schema before already has the new name) the declaration is history and ignored, so a spec
may keep it for any number of versions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from extschema.model import EnumSpec, ExtensionSchemaSpec
from extschema.planning.changes import ColumnRenamed, EnumValueRenamed, TableRenamed
from extschema.planning.diff.run import Run
from extschema.planning.ops import RenameColumn, RenameEnumValue, RenameTable
from extschema.planning.resolved import IndexDef, TableDef
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


def diff(run: Run, renamed: Renames) -> None:
    for new, (old, path) in renamed.tables.items():
        table = run.state.table(old)
        if table is not None and run.state.table(new) is None:
            after = retarget_table(dataclasses.replace(table, name=new), run.plugin_id, old, new)
            run.add(TableRenamed(path=path, old=old, new=new, ops=(RenameTable(run.plugin_id, table, after),)))
    for (table_name, new), (old, path) in renamed.columns.items():
        table = run.state.table(table_name)
        if table is not None and table.column(old) is not None and table.column(new) is None:
            rename_op = RenameColumn(run.plugin_id, table, rename_column(table, run.plugin_id, old, new), old, new)
            run.add(ColumnRenamed(path=path, table=table_name, old=old, new=new, ops=(rename_op,)))
    for enum_name, pairs in renamed.values.items():
        for old, new, path in pairs:
            enum = run.state.enum(enum_name)
            if enum is not None and old in enum.values and new not in enum.values:
                run.add(
                    EnumValueRenamed(
                        path=path, enum=enum_name, old=old, new=new, ops=(_rename_value(run, enum, old, new),)
                    )
                )


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
