"""Operations: the steps of a migration, each with its reverse and a stable serialised form.

Operations are dialect-neutral; :mod:`extschema.dialects` renders them to SQL. Operations that a
dialect cannot do in place (SQLite cannot alter a CHECK constraint) carry the whole table
before and after, so the dialect can rebuild the table.

:meth:`Op.to_dict` is the serialised form: JSON values only, a ``kind`` naming the operation,
keys sorted, fields at their default left out (so adding a defaulted field later leaves existing
plans' form unchanged). :func:`canonical_json` turns it into one exact text — plans are hashed
from it, so it depends neither on dict order nor on Python's ``repr``. :func:`from_dict` reads
it back.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from typing import Any, ClassVar, Union

import pydantic

from extschema.model import EnumSpec
from extschema.planning.resolved import ColumnDef, IndexDef, TableDef

#: Version of the serialised form; bump it when the form changes on purpose.
FORMAT = 1


@dataclasses.dataclass(frozen=True)
class Op:
    plugin_id: str

    #: The operation's name in the serialised form (stable, whatever the class is called).
    KIND: ClassVar[str] = ""

    def reverse(self) -> Op:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return _sorted({"kind": self.KIND, **_encode(self)})


class CreatePluginNamespace(Op):
    KIND = "create_plugin_namespace"

    def reverse(self) -> Op:
        return DropPluginNamespace(self.plugin_id)

    def describe(self) -> str:
        return f"create namespace for plugin {self.plugin_id}"


class DropPluginNamespace(Op):
    KIND = "drop_plugin_namespace"

    def reverse(self) -> Op:
        return CreatePluginNamespace(self.plugin_id)

    def describe(self) -> str:
        return f"drop namespace of plugin {self.plugin_id}"


@dataclasses.dataclass(frozen=True)
class _EnumOp(Op):
    enum: EnumSpec


class CreateEnum(_EnumOp):
    KIND = "create_enum"

    def reverse(self) -> Op:
        return DropEnum(self.plugin_id, self.enum)

    def describe(self) -> str:
        return f"create enum {self.enum.name} ({', '.join(self.enum.values)})"


class DropEnum(_EnumOp):
    KIND = "drop_enum"

    def reverse(self) -> Op:
        return CreateEnum(self.plugin_id, self.enum)

    def describe(self) -> str:
        return f"drop enum {self.enum.name}"


@dataclasses.dataclass(frozen=True)
class ChangeEnumValues(Op):
    """Add (or, as a reverse, remove) enum values; *tables* are those with columns of the enum,
    as they are before and after, for dialects that must rebuild them."""

    KIND = "change_enum_values"
    before: EnumSpec
    after: EnumSpec
    tables: tuple[tuple[TableDef, TableDef], ...]

    def reverse(self) -> Op:
        return ChangeEnumValues(self.plugin_id, self.after, self.before, tuple((a, b) for b, a in self.tables))

    @property
    def added(self) -> list[str]:
        return [v for v in self.after.values if v not in self.before.values]

    @property
    def removed(self) -> list[str]:
        return [v for v in self.before.values if v not in self.after.values]

    def describe(self) -> str:
        added = f"add values {', '.join(self.added)}" if self.added else ""
        removed = f"remove values {', '.join(self.removed)}" if self.removed else ""
        if added and removed:
            return f"{added} and {removed} of enum {self.after.name}"
        return f"{added} to enum {self.after.name}" if added else f"{removed} from enum {self.after.name}"


@dataclasses.dataclass(frozen=True)
class _TableOp(Op):
    table: TableDef


class CreateTable(_TableOp):
    KIND = "create_table"

    def reverse(self) -> Op:
        return DropTable(self.plugin_id, self.table)

    def describe(self) -> str:
        return f"create table {self.table.name} ({len(self.table.columns) + 1} columns)"


class DropTable(_TableOp):
    KIND = "drop_table"

    def reverse(self) -> Op:
        return CreateTable(self.plugin_id, self.table)

    def describe(self) -> str:
        return f"drop table {self.table.name}"


@dataclasses.dataclass(frozen=True)
class _ColumnOp(Op):
    """One column added or dropped, with the table as it is before and after."""

    before: TableDef
    after: TableDef
    column: ColumnDef


class AddColumn(_ColumnOp):
    KIND = "add_column"

    def reverse(self) -> Op:
        return DropColumn(self.plugin_id, self.after, self.before, self.column)

    def describe(self) -> str:
        return f"add column {self.before.name}.{self.column.name} ({self.column.type})"


class DropColumn(_ColumnOp):
    KIND = "drop_column"

    def reverse(self) -> Op:
        return AddColumn(self.plugin_id, self.after, self.before, self.column)

    def describe(self) -> str:
        return f"drop column {self.before.name}.{self.column.name}"


@dataclasses.dataclass(frozen=True)
class _IndexOp(Op):
    table: str
    index: IndexDef


class CreateIndex(_IndexOp):
    KIND = "create_index"

    def reverse(self) -> Op:
        return DropIndex(self.plugin_id, self.table, self.index)

    def describe(self) -> str:
        kind = "unique index" if self.index.unique else "index"
        return f"create {kind} on {self.table} ({', '.join(self.index.columns)})"


class DropIndex(_IndexOp):
    KIND = "drop_index"

    def reverse(self) -> Op:
        return CreateIndex(self.plugin_id, self.table, self.index)

    def describe(self) -> str:
        return f"drop index on {self.table} ({', '.join(self.index.columns)})"


@dataclasses.dataclass(frozen=True)
class RenameTable(Op):
    """A table renamed (``renamedFrom``): same shape, new name; its rows, indexes and keys stay."""

    KIND = "rename_table"
    before: TableDef
    after: TableDef

    def reverse(self) -> Op:
        return RenameTable(self.plugin_id, self.after, self.before)

    def describe(self) -> str:
        return f"rename table {self.before.name} to {self.after.name}"


@dataclasses.dataclass(frozen=True)
class RenameColumn(Op):
    """A column renamed (``renamedFrom``), with the table as it is before and after."""

    KIND = "rename_column"
    before: TableDef
    after: TableDef
    old: str
    new: str

    def reverse(self) -> Op:
        return RenameColumn(self.plugin_id, self.after, self.before, self.new, self.old)

    def describe(self) -> str:
        return f"rename column {self.after.name}.{self.old} to {self.new}"


@dataclasses.dataclass(frozen=True)
class AlterColumn(Op):
    """A column's type, nullability, default, rules, uniqueness or foreign key changed (same name).

    Carries the table before and after, for dialects that must rebuild it (SQLite).
    """

    KIND = "alter_column"
    before: TableDef
    after: TableDef
    old: ColumnDef
    new: ColumnDef

    def reverse(self) -> Op:
        return AlterColumn(self.plugin_id, self.after, self.before, self.new, self.old)

    def changed(self) -> list[str]:
        """Names of the :class:`ColumnDef` attributes that differ (``description`` excluded)."""
        return [
            f.name
            for f in dataclasses.fields(ColumnDef)
            if f.compare and getattr(self.old, f.name) != getattr(self.new, f.name)
        ]

    def describe(self) -> str:
        return f"alter column {self.after.name}.{self.new.name} ({', '.join(self.changed())})"


@dataclasses.dataclass(frozen=True)
class RenameEnumValue(Op):
    """An enum value renamed (``renamedValues``): rows holding it get the new value."""

    KIND = "rename_enum_value"
    before: EnumSpec
    after: EnumSpec
    old: str
    new: str
    #: Tables with columns of the enum, before and after, for dialects that must rebuild them.
    tables: tuple[tuple[TableDef, TableDef], ...]

    def reverse(self) -> Op:
        return RenameEnumValue(
            self.plugin_id, self.after, self.before, self.new, self.old, tuple((a, b) for b, a in self.tables)
        )

    def describe(self) -> str:
        return f"rename value {self.old} of enum {self.after.name} to {self.new}"


@dataclasses.dataclass(frozen=True)
class EnforceIntRange(Op):
    """Make the database keep *columns* (Int fields of *table*) within Int's range, where the table
    predates that rule (a drift repair of an SQLite table an older version created); the reverse
    (*enforced* False) takes the rule away again, as that version left it. Values are not changed:
    rows outside the range are refused before it runs (ES309)."""

    KIND = "enforce_int_range"
    table: TableDef
    columns: tuple[str, ...]
    enforced: bool = True

    def reverse(self) -> Op:
        return EnforceIntRange(self.plugin_id, self.table, self.columns, not self.enforced)

    def describe(self) -> str:
        named = ", ".join(f"{self.table.name}.{c}" for c in self.columns)
        if self.enforced:
            return f"enforce Int's range on {named}"
        return f"stop enforcing Int's range on {named} (as before the repair)"


@dataclasses.dataclass(frozen=True)
class RunSql(Op):
    """A hand-written step of ``spec.migrations``; its reverse runs the step's ``rollbackSql``."""

    KIND = "run_sql"
    id: str
    sql: str
    rollback_sql: str

    def reverse(self) -> Op:
        return RunSql(self.plugin_id, self.id, self.rollback_sql, self.sql)

    def describe(self) -> str:
        return f"run SQL step {self.id}"


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one migration does, and what undoes it."""

    plugin_id: str
    ops: tuple[Op, ...]

    @property
    def empty(self) -> bool:
        return not self.ops

    def reverse(self) -> Plan:
        return Plan(self.plugin_id, tuple(op.reverse() for op in reversed(self.ops)))

    def describe(self) -> list[str]:
        return [op.describe() for op in self.ops]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "ops": [op.to_dict() for op in self.ops], "plugin_id": self.plugin_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """Read :meth:`to_dict`'s form back; ``ValueError`` for another format or a malformed one."""
        if data.get("format") != FORMAT:
            raise ValueError(f"plan format {data.get('format')!r} is not {FORMAT}")
        try:
            return cls(data["plugin_id"], tuple(from_dict(op) for op in data["ops"]))
        except (KeyError, TypeError) as error:
            raise ValueError(f"malformed plan: {error!r}") from None


#: Every operation class by its serialised ``kind``.
KINDS: dict[str, type[Op]] = {
    cls.KIND: cls
    for cls in (
        CreatePluginNamespace,
        DropPluginNamespace,
        CreateEnum,
        DropEnum,
        ChangeEnumValues,
        CreateTable,
        DropTable,
        AddColumn,
        DropColumn,
        CreateIndex,
        DropIndex,
        RenameTable,
        RenameColumn,
        AlterColumn,
        RenameEnumValue,
        EnforceIntRange,
        RunSql,
    )
}


def from_dict(data: dict[str, Any]) -> Op:
    """The operation :meth:`Op.to_dict` serialised; ``ValueError`` when *data* is not one."""
    fields = dict(data)
    cls = KINDS.get(fields.pop("kind", None))
    if cls is None:
        raise ValueError(f"unknown operation kind {data.get('kind')!r}")
    try:
        return typing.cast(Op, _decode(cls, fields))
    except (TypeError, KeyError, pydantic.ValidationError) as error:
        raise ValueError(f"malformed {cls.KIND} operation: {error}") from None


def canonical_json(data: Any) -> str:
    """The one text of a serialised form: sorted keys, no spaces, UTF-8 left as is, no NaN."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# --- codec --------------------------------------------------------------------------------------


def _sorted(data: dict[str, Any]) -> dict[str, Any]:
    return {key: data[key] for key in sorted(data)}


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
    """A dataclass's fields as (name, default), sorted by name (the serialised order)."""
    return tuple(sorted(((f.name, f.default) for f in dataclasses.fields(cls)), key=lambda f: f[0]))


_PLAIN = (str, int, bool, float, type(None))


def _encode(value: Any) -> Any:
    cls = type(value)
    if cls in _PLAIN:  # most values: decided at once (a plan of 1,500 tables has 70,000)
        return value
    if cls is tuple or cls is list:
        return [_encode(v) for v in value]
    if isinstance(value, pydantic.BaseModel):
        return _encode(value.model_dump(mode="json", by_alias=True, exclude_defaults=True))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        encoded = {}
        for name, default in _fields(type(value)):
            field = getattr(value, name)
            if default is dataclasses.MISSING or field != default:
                encoded[name] = _encode(field)
        return encoded
    if isinstance(value, dict):
        return _sorted({str(k): _encode(v) for k, v in value.items()})
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    # Anything else (a Decimal, a date) would need a form of its own: fail here, not when hashing.
    raise TypeError(f"{type(value).__name__} value {value!r} has no serialised form")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode(hint: Any, data: Any) -> Any:
    """*data* (the serialised form) as a value of type *hint*."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], item) for item in data)
        return tuple(_decode(arg, item) for arg, item in zip(args, data, strict=True))
    if origin in (Union, types.UnionType):
        if data is None:
            return None
        classes = [a for a in typing.get_args(hint) if isinstance(a, type) and a is not type(None)]
        structured = [a for a in classes if issubclass(a, pydantic.BaseModel) or dataclasses.is_dataclass(a)]
        return _decode(structured[0], data) if structured else data
    if isinstance(hint, type) and issubclass(hint, pydantic.BaseModel):
        return hint.model_validate(data)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = _hints(hint)
        return hint(**{name: _decode(hints[name], value) for name, value in data.items()})
    return data
