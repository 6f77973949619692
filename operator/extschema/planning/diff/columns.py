"""Columns of a table in both schemas: removed, changed, added (added ones one at a time, each
operation carrying the table as it is before and after it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from extschema.planning.changes import Change, ColumnAdded, ColumnChanged, ColumnRemoved, RequiredColumnAdded
from extschema.planning.ops import AddColumn
from extschema.planning.resolved import Resolved, TableDef


def diff(old: TableDef, new: TableDef, after: Resolved) -> Iterator[Change]:
    # Enum value changes come first in a plan; compare against the enum-updated old table.
    current = old
    for enum in after.enums:
        current = current.with_enum(enum)
    for column in current.columns:
        path = after.origins.column(new.name, column.name)
        new_column = new.column(column.name)
        if new_column is None:
            yield ColumnRemoved(path=path, table=new.name, column=column)
        elif new_column != column:
            yield ColumnChanged(path=path, table=new.name, before=column, after=new_column)
    for column in new.columns:
        if current.column(column.name) is not None:
            continue
        path = after.origins.column(new.name, column.name)
        if not column.nullable and column.default is None:
            yield RequiredColumnAdded(path=path, table=new.name, column=column)
            continue
        grown = dataclasses.replace(current, columns=(*current.columns, column))
        yield ColumnAdded(
            path=path, table=new.name, column=column, ops=(AddColumn(after.plugin_id, current, grown, column),)
        )
        current = grown
