"""Declared indexes and multi-column unique constraints of a kept table: removed ones are dropped
before its columns change (a changed index of the same name is dropped, then created again), new
ones created after."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from extschema.planning.changes import IndexAdded, IndexRemoved
from extschema.planning.diff.run import Run
from extschema.planning.ops import CreateIndex, DropIndex
from extschema.planning.resolved import IndexDef, TableDef

_LISTS = (("unique_together", "uniqueConstraints"), ("indexes", "indexes"))


def removed(run: Run, new: TableDef) -> None:
    path = run.after.origins.table(new.name)
    for label, old_items, new_items in _lists(run.table(new.name), new):
        for item in old_items:
            if item not in new_items:
                index = _as_index(item, label)
                op = DropIndex(run.plugin_id, new.name, index)
                run.add(IndexRemoved(path=f"{path}.{label}", table=new.name, index=index, label=label, ops=(op,)))


def added(run: Run, new: TableDef) -> None:
    path = run.after.origins.table(new.name)
    for label, old_items, new_items in _lists(run.table(new.name), new):
        for item in new_items:
            if item not in old_items:
                index = _as_index(item, label)
                op = CreateIndex(run.plugin_id, new.name, index)
                run.add(IndexAdded(path=f"{path}.{label}", table=new.name, index=index, label=label, ops=(op,)))


def _lists(old: TableDef, new: TableDef) -> Iterator[tuple[str, tuple[IndexDef, ...], tuple[IndexDef, ...]]]:
    for attr, label in _LISTS:
        yield label, getattr(old, attr), getattr(new, attr)


def _as_index(item: IndexDef, label: str) -> IndexDef:
    """A unique constraint is created — and dropped — as a unique index."""
    return item if label == "indexes" else dataclasses.replace(item, unique=True)
