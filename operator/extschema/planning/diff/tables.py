"""Tables: added, and for kept ones their indexes and columns; at the end, removed ones."""

from __future__ import annotations

import dataclasses

from extschema.planning.changes import TableAdded, TableRemoved
from extschema.planning.diff import columns, indexes
from extschema.planning.diff.run import Run
from extschema.planning.ops import CreateIndex, CreateTable, DropIndex, DropTable, Op
from extschema.planning.resolved import TableDef


def diff(run: Run) -> None:
    """New tables, and the changes of kept ones (drops come later: :func:`drops`)."""
    for table in run.after.tables:
        if run.state.table(table.name) is None:
            created = run.current_table(table)
            run.add(
                TableAdded(
                    path=run.after.origins.table(table.name), table=created, ops=create_ops(run.plugin_id, created)
                )
            )
            continue
        indexes.removed(run, table)
        columns.changed(run, table)
        columns.added(run, table)
        indexes.added(run, table)


def drops(run: Run) -> None:
    """Removed columns of kept tables, then removed tables, referencing ones first."""
    for table in run.after.tables:
        columns.removed(run, table)
    for table in reversed(run.state.tables):
        if run.after.table(table.name) is None:
            run.add(TableRemoved(path="spec.tables", table=table, ops=drop_ops(run.plugin_id, table)))


def drop_ops(plugin_id: str, table: TableDef) -> tuple[Op, ...]:
    """The reverse of :func:`create_ops`: its declared indexes, then the table, so that rolling
    back re-creates the indexes too."""
    bare = dataclasses.replace(table, indexes=())
    return (*(DropIndex(plugin_id, table.name, i) for i in reversed(table.indexes)), DropTable(plugin_id, bare))


def create_ops(plugin_id: str, table: TableDef) -> tuple[Op, ...]:
    """A table and its declared indexes (the others come with the table)."""
    return (CreateTable(plugin_id, table), *(CreateIndex(plugin_id, table.name, i) for i in table.indexes))
