"""Columns of a kept table: changed, added (one at a time, each operation carrying the table as it
is before and after it), and — in the drops phase — removed."""

from __future__ import annotations

import dataclasses

from extschema.planning.changes import ColumnAdded, ColumnChanged, ColumnRemoved, RequiredColumnAdded
from extschema.planning.diff.run import Run
from extschema.planning.ops import AddColumn, AlterColumn, DropColumn
from extschema.planning.resolved import ColumnDef, TableDef, replace_column
from extschema.planning.state import same_column


def changed(run: Run, new: TableDef) -> None:
    for column in new.columns:
        current = run.table(new.name)
        old = current.column(column.name)
        if old is None:
            continue
        target = _target(run, old, column)
        if same_column(old, target):
            continue
        after = _replaced(current, target)
        path = run.after.origins.column(new.name, column.name)
        op = AlterColumn(run.plugin_id, current, after, old, target)
        run.add(ColumnChanged(path=path, table=new.name, before=old, after=target, ops=(op,)))


def added(run: Run, new: TableDef) -> None:
    for column in new.columns:
        current = run.table(new.name)
        if current.column(column.name) is not None:
            continue
        path = run.after.origins.column(new.name, column.name)
        if not column.nullable and column.default is None:
            run.add(RequiredColumnAdded(path=path, table=new.name, column=column))
            continue
        column = run.current(column)
        grown = dataclasses.replace(current, columns=(*current.columns, column))
        run.add(
            ColumnAdded(
                path=path, table=new.name, column=column, ops=(AddColumn(run.plugin_id, current, grown, column),)
            )
        )


def removed(run: Run, new: TableDef) -> None:
    for column in run.table(new.name).columns:
        if new.column(column.name) is not None:
            continue
        current = run.table(new.name)
        path = run.after.origins.column(new.name, column.name)
        shrunk = dataclasses.replace(current, columns=tuple(c for c in current.columns if c.name != column.name))
        op = DropColumn(run.plugin_id, current, shrunk, column)
        run.add(ColumnRemoved(path=path, table=new.name, column=column, ops=(op,)))


def _target(run: Run, old: ColumnDef, new: ColumnDef) -> ColumnDef:
    """*new* as this step makes it: a column keeping its enum keeps the enum's current values (the
    enum's own operations change them)."""
    if old.enum is not None and new.enum is not None and old.enum.name == new.enum.name:
        return replace_column(new, enum=old.enum)
    return run.current(new)


def _replaced(table: TableDef, column: ColumnDef) -> TableDef:
    return dataclasses.replace(table, columns=tuple(column if c.name == column.name else c for c in table.columns))
