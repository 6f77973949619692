"""Changes: what differs between two resolved schemas of a plugin, as typed facts.

The diff (:mod:`extschema.planning.diff`) finds changes; the policy
(:mod:`extschema.planning.policy`) decides which of them may happen. A change carries the
operations that carry it out — none for the few kinds extschema cannot carry out — and says what
happened in words; the policy adds why it is refused and what to do instead.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from extschema.model import EnumSpec
from extschema.planning.ops import Op
from extschema.planning.resolved import ColumnDef, IndexDef, TableDef
from extschema.planning.state import shape


@dataclasses.dataclass(frozen=True, kw_only=True)
class Change:
    """One difference; *path* locates it in the new spec."""

    path: str
    ops: tuple[Op, ...] = ()

    #: What happened to :meth:`subject`, for the kinds described as "<subject> was <event>".
    EVENT: ClassVar[str] = ""

    def subject(self) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.subject()} was {self.EVENT}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class _OfEnum(Change):
    enum: EnumSpec

    def subject(self) -> str:
        return f"enum {self.enum.name!r}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class _OfEnumValues(Change):
    before: EnumSpec
    after: EnumSpec


@dataclasses.dataclass(frozen=True, kw_only=True)
class _OfTable(Change):
    table: TableDef

    def subject(self) -> str:
        return f"table {self.table.name!r}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class _OfColumn(Change):
    table: str
    column: ColumnDef

    def subject(self) -> str:
        return f"field {self.table}.{self.column.name}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class _OfIndex(Change):
    table: str
    index: IndexDef
    label: str  # the spec's list: indexes or uniqueConstraints

    def subject(self) -> str:
        return f"{self.label} entry on ({', '.join(self.index.columns)}) of {self.table}"


# --- renames -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class TableRenamed(Change):
    old: str
    new: str

    def describe(self) -> str:
        return f"table {self.old!r} was renamed to {self.new!r}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ColumnRenamed(Change):
    table: str
    old: str
    new: str

    def describe(self) -> str:
        return f"field {self.table}.{self.old} was renamed to {self.new}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class EnumValueRenamed(Change):
    enum: str
    old: str
    new: str

    def describe(self) -> str:
        return f"value {self.old!r} of enum {self.enum!r} was renamed to {self.new!r}"


# --- additive ----------------------------------------------------------------------------------


class EnumAdded(_OfEnum):
    EVENT = "added"


class EnumValuesAdded(_OfEnumValues):
    def describe(self) -> str:
        added = [v for v in self.after.values if v not in self.before.values]
        return f"values {', '.join(added)} were added to enum {self.after.name!r}"


class TableAdded(_OfTable):
    EVENT = "added"


class ColumnAdded(_OfColumn):
    EVENT = "added"


class IndexAdded(_OfIndex):
    EVENT = "added"


# --- not additive ------------------------------------------------------------------------------


class EnumRemoved(_OfEnum):
    EVENT = "removed"


class EnumValuesRemoved(_OfEnumValues):
    def describe(self) -> str:
        removed = [v for v in self.before.values if v not in self.after.values]
        return f"values {', '.join(removed)} were removed from enum {self.after.name!r}"


class EnumValuesChanged(_OfEnumValues):
    """Values kept in another order (adding or removing values is not reordering)."""

    def describe(self) -> str:
        return (
            f"enum {self.after.name!r} values were reordered ({', '.join(self.before.values)} → "
            f"{', '.join(self.after.values)})"
        )


class TableRemoved(_OfTable):
    EVENT = "removed"


class ColumnRemoved(_OfColumn):
    EVENT = "removed"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ColumnChanged(Change):
    table: str
    before: ColumnDef
    after: ColumnDef

    def describe(self) -> str:
        before, after = shape(self.before), shape(self.after)
        names = [
            f.name
            for f in dataclasses.fields(ColumnDef)
            if f.compare and getattr(before, f.name) != getattr(after, f.name)
        ]
        changed = ", ".join(
            f"{name}: {getattr(self.before, name)!r} → {getattr(self.after, name)!r}" if name != "enum" else "enum"
            for name in names
        )
        return f"field {self.table}.{self.before.name} changed ({changed})"


class RequiredColumnAdded(_OfColumn):
    """A new NOT NULL column without a default: existing rows would have no value."""

    def describe(self) -> str:
        return f"new required {self.subject()} has no default, so existing rows would have no value"


class IndexRemoved(_OfIndex):
    """An index or unique constraint removed — or changed, which is the old one removed."""

    EVENT = "removed or changed"
