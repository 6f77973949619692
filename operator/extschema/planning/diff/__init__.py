"""The difference of two resolved schemas of a plugin as :class:`~extschema.planning.changes.Change` s.

One module per object kind, as alembic's autogenerate compares them. Changes are found in the
order their operations run, each operation computed against the schema as the operations before
it left it (a :class:`~extschema.planning.state.State` threaded through :class:`.run.Run`):

1. renames (:mod:`.renames`): tables, then fields, then enum values — later steps see new names
   (join tables and relationship columns named after a renamed table are renamed with it);
2. new enums and new enum values (:mod:`.enums`), which the tables below may use;
3. table by table: new tables; for kept ones removed indexes, changed and new columns, new indexes;
4. drops: removed columns, removed tables (referencing ones first), removed enum values, removed enums.
"""

from __future__ import annotations

from collections.abc import Iterator

from extschema.planning.changes import Change
from extschema.planning.diff import enums, renames, tables
from extschema.planning.diff.renames import Renames
from extschema.planning.diff.run import Run
from extschema.planning.ops import CreateEnum, CreatePluginNamespace, Op
from extschema.planning.resolved import Resolved
from extschema.planning.state import State

__all__ = ["Renames", "changes", "create_all"]


def changes(before: Resolved, after: Resolved, renamed: Renames | None = None) -> list[Change]:
    """Every change from *before* to *after*, in the order their operations must run.

    *renamed* are the renames the new spec declares (``renamedFrom``, ``renamedValues``); those
    the previous schema has already applied are ignored.
    """
    run = Run(after, State.of(before))
    renames.diff(run, renamed or Renames(), (j.name for j in before.joins))
    enums.additions(run)
    tables.diff(run)
    tables.drops(run)
    enums.removals(run)
    return run.found


def create_all(state: Resolved) -> Iterator[Op]:
    """The operations that create *state* from nothing."""
    yield CreatePluginNamespace(state.plugin_id)
    for enum in state.enums:
        yield CreateEnum(state.plugin_id, enum)
    for table in state.tables:
        yield from tables.create_ops(state.plugin_id, table)
