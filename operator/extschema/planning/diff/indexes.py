"""Declared indexes and multi-column unique constraints of a table in both schemas."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from extschema.planning.changes import Change, IndexAdded, IndexRemoved
from extschema.planning.ops import CreateIndex
from extschema.planning.resolved import IndexDef, Resolved, TableDef


def diff(old: TableDef, new: TableDef, after: Resolved) -> Iterator[Change]:
    table_path = after.origins.table(new.name)
    for attr, label in (("unique_together", "uniqueConstraints"), ("indexes", "indexes")):
        path = f"{table_path}.{label}"
        old_items: tuple[IndexDef, ...] = getattr(old, attr)
        new_items: tuple[IndexDef, ...] = getattr(new, attr)
        for item in old_items:
            if item not in new_items:
                yield IndexRemoved(path=path, table=new.name, index=item, label=label)
        for item in new_items:
            if item not in old_items:
                # A unique constraint is created as a unique index.
                index = item if attr == "indexes" else dataclasses.replace(item, unique=True)
                op = CreateIndex(after.plugin_id, new.name, index)
                yield IndexAdded(path=path, table=new.name, index=index, label=label, ops=(op,))
