"""Tables: added, removed, and for tables in both, their columns and indexes."""

from __future__ import annotations

from collections.abc import Iterator

from extschema.planning.changes import Change, TableAdded, TableRemoved
from extschema.planning.diff import columns, indexes
from extschema.planning.ops import CreateIndex, CreateTable, Op
from extschema.planning.resolved import Resolved, TableDef


def diff(before: Resolved, after: Resolved) -> Iterator[Change]:
    for old_table in before.tables:
        if after.table(old_table.name) is None:
            yield TableRemoved(path="spec.tables", table=old_table)
    for table in after.tables:
        old = before.table(table.name)
        if old is None:
            path = after.origins.table(table.name)
            yield TableAdded(path=path, table=table, ops=create_ops(after.plugin_id, table))
            continue
        yield from columns.diff(old, table, after)
        yield from indexes.diff(old, table, after)


def create_ops(plugin_id: str, table: TableDef) -> tuple[Op, ...]:
    """A table and its declared indexes (the others come with the table)."""
    return (CreateTable(plugin_id, table), *(CreateIndex(plugin_id, table.name, i) for i in table.indexes))
