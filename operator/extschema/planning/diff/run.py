"""One diff in progress: the new schema, the schema as the changes found so far leave it, and those changes."""

from __future__ import annotations

import dataclasses

from extschema.planning.changes import Change
from extschema.planning.resolved import ColumnDef, Resolved, TableDef
from extschema.planning.state import State, enum_shape


@dataclasses.dataclass
class Run:
    after: Resolved
    state: State
    found: list[Change] = dataclasses.field(default_factory=list)

    @property
    def plugin_id(self) -> str:
        return self.after.plugin_id

    def add(self, change: Change) -> None:
        """Record *change* and advance the state by its operations."""
        self.found.append(change)
        self.state = self.state.apply_all(change.ops)

    def table(self, name: str) -> TableDef:
        """The table *name* as it is now (the caller knows it exists)."""
        table = self.state.table(name)
        assert table is not None, name
        return table

    def current(self, column: ColumnDef) -> ColumnDef:
        """*column* as it can be created now: an enum whose values are still being changed (values
        to remove are removed last) with the values it has at this point."""
        if column.enum is None:
            return column
        now = self.state.enum(column.enum.name)
        if now is None or enum_shape(now) == enum_shape(column.enum):
            return column
        return dataclasses.replace(column, enum=now)

    def current_table(self, table: TableDef) -> TableDef:
        columns = tuple(self.current(c) for c in table.columns)
        return table if columns == table.columns else dataclasses.replace(table, columns=columns)
