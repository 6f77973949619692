"""The difference of two resolved schemas of a plugin as :class:`~extschema.planning.changes.Change` s.

One module per object kind, as alembic's autogenerate compares them: enums first (their new
values apply to the tables compared after them), then tables, with their columns and indexes.
"""

from __future__ import annotations

from collections.abc import Iterator

from extschema.planning.changes import Change
from extschema.planning.diff import enums, tables
from extschema.planning.ops import CreateEnum, CreatePluginNamespace, Op
from extschema.planning.resolved import Resolved


def changes(before: Resolved, after: Resolved) -> list[Change]:
    """Every change from *before* to *after*, in the order their operations must run."""
    return [*enums.diff(before, after), *tables.diff(before, after)]


def create_all(state: Resolved) -> Iterator[Op]:
    """The operations that create *state* from nothing."""
    yield CreatePluginNamespace(state.plugin_id)
    for enum in state.enums:
        yield CreateEnum(state.plugin_id, enum)
    for table in state.tables:
        yield from tables.create_ops(state.plugin_id, table)
