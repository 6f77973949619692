"""Pydantic models of a plugin's rows, built from its resolved spec: what the REST API reads and
writes, and what ``extschema types`` emits as source.

Per table: ``Read`` (``id`` and every column as the database returns it), ``Create`` (required =
NOT NULL without a default; omitted fields get the database's default) and ``Patch`` (a merge
patch: every field may be omitted, but an explicit ``null`` on a NOT NULL field is refused).
Write models accept exactly what the database's CHECKs accept (lengths, ranges including the
type's own, Decimal precision and scale, patterns as PostgreSQL evaluates them, enum values),
minus what no portable client can store: text with NUL or lone surrogates, NaN and infinities,
Decimals the database would round (PostgreSQL rounds extra scale digits, SQLite refuses them).

Every model is described first as plain values (:class:`FieldShape`); :func:`annotation` turns a
shape into a pydantic type here and :mod:`extschema.typegen` turns the same shape into source, so
the emitted models and the runtime ones cannot drift. Pure: no SQLAlchemy, no I/O.

Field names on the wire are the spec's; a name pydantic cannot use as an attribute (a Python
keyword, a ``BaseModel`` attribute, ``model_*``) gets a trailing ``_`` as attribute, with the
wire name as alias (the models validate and serialize by alias).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import functools
import keyword
import re
import uuid
import weakref
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

import pydantic
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from extschema import limits, portable_regex
from extschema.model import CORE_PLUGIN, FieldType, RelationshipType
from extschema.planning import ID_TYPE, ColumnDef, ForeignKeyDef, Resolved, TableDef

#: What a value of a column is, on the wire.
ValueKind = Literal["string", "integer", "float", "decimal", "boolean", "date", "datetime", "json", "uuid", "enum"]

_KINDS: dict[FieldType, ValueKind] = {
    "String": "string",
    "Text": "string",
    "Int": "integer",
    "BigInt": "integer",
    "Float": "float",
    "Decimal": "decimal",
    "Boolean": "boolean",
    "Date": "date",
    "DateTime": "datetime",
    "Json": "json",
    "Uuid": "uuid",
    "Enum": "enum",
}

ModelKind = Literal["read", "create", "patch"]

#: The config of every row model: unknown fields are errors; wire names in and out.
MODEL_CONFIG = ConfigDict(
    extra="forbid",
    validate_by_alias=True,
    validate_by_name=True,
    serialize_by_alias=True,
    protected_namespaces=(),
)


@dataclasses.dataclass(frozen=True)
class Rules:
    """The value rules of a written field (none on ``Read``): each maps to one pydantic constraint."""

    min_length: int | None = None
    max_length: int | None = None
    ge: int | float | decimal.Decimal | None = None
    le: int | float | decimal.Decimal | None = None
    max_digits: int | None = None
    decimal_places: int | None = None
    pattern: str | None = None


@dataclasses.dataclass(frozen=True)
class FieldShape:
    """One field of one model, as plain values."""

    name: str  # on the wire
    attribute: str  # the Python attribute
    kind: ValueKind
    nullable: bool  # null is a value (Read: the column is nullable; Create/Patch: it may be set to NULL)
    required: bool  # must be present
    default: Any = None  # when not required: the value the model shows (the database applies its own)
    enum_values: tuple[str, ...] = ()
    rules: Rules = Rules()
    description: str | None = None


@dataclasses.dataclass(frozen=True)
class ModelShape:
    name: str  # class name
    kind: ModelKind
    fields: tuple[FieldShape, ...]
    description: str | None = None


@dataclasses.dataclass(frozen=True)
class FieldMeta:
    """What the API may do with a column of a table."""

    name: str
    type: FieldType
    nullable: bool
    unique: bool
    enum: str | None
    foreign_key: ForeignKeyDef | None
    filterable: bool  # indexed, enum, unique or foreign key: ``?field=value`` is cheap
    sortable: bool  # leads an index: ``sort=field`` reads it in order


@dataclasses.dataclass(frozen=True)
class Relationship:
    """A way from a row of this table to related rows (``?include=name``).

    ``ManyToOne``/``OneToOne`` (``many`` false): ``column`` of this table references
    ``target_column`` of the target. ``OneToMany`` (and the back end of a ``OneToOne``, both of
    this plugin): ``column`` of the *target* references ``target_column`` of this table.
    ``ManyToMany``: through the join table ``through``, whose ``through_column`` references this
    table's ``column`` and whose ``through_target_column`` references the target's ``target_column``.
    """

    name: str
    kind: RelationshipType
    target_plugin: str
    target_table: str
    column: str
    target_column: str
    many: bool
    through: str | None = None
    through_column: str | None = None
    through_target_column: str | None = None

    @property
    def target_is_core(self) -> bool:
        return self.target_plugin == CORE_PLUGIN


@dataclasses.dataclass(frozen=True)
class TableModels:
    """The models and metadata of one table."""

    plugin_id: str
    table: str
    read: type[BaseModel]
    create: type[BaseModel]
    patch: type[BaseModel]
    fields: Mapping[str, FieldMeta]  # by wire name, ``id`` first
    relationships: Mapping[str, Relationship]
    join_table: bool  # made by a ManyToMany relationship (its rows are links)
    shapes: tuple[ModelShape, ModelShape, ModelShape]  # read, create, patch (for typegen)

    @property
    def filterable(self) -> tuple[str, ...]:
        return tuple(name for name, meta in self.fields.items() if meta.filterable)

    @property
    def sortable(self) -> tuple[str, ...]:
        return tuple(name for name, meta in self.fields.items() if meta.sortable)


# --- names --------------------------------------------------------------------------------------


def pascal(name: str) -> str:
    """``custom_reports`` -> ``CustomReports`` (plugin ids and table names are lower_snake_case)."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def model_name(plugin_id: str, table: str, kind: ModelKind) -> str:
    """Class names never collide across plugins: the plugin id leads."""
    suffix = {"read": "", "create": "Create", "patch": "Patch"}[kind]
    return f"{pascal(plugin_id)}{pascal(table)}{suffix}"


@functools.cache
def _reserved() -> frozenset[str]:
    return frozenset(dir(BaseModel))


def attribute_name(name: str) -> str:
    """The Python attribute of wire field *name*."""
    if keyword.iskeyword(name) or name in _reserved() or name.startswith("model_") or name.startswith("_"):
        return name + "_"
    return name


# --- shapes -------------------------------------------------------------------------------------

_ID = ColumnDef("id", ID_TYPE, nullable=False)


def _decimal(value: int | float) -> decimal.Decimal:
    # repr: the shortest text of a float, the literal the CHECK compares with (0.1, not 0.1000000000000000055...).
    return decimal.Decimal(value) if isinstance(value, int) else decimal.Decimal(repr(value))


def rules_of(column: ColumnDef) -> Rules:
    """The rules the database enforces on *column*'s values (its CHECKs and its type's range)."""
    match column.type:
        case "String":
            return Rules(min_length=column.min_length, max_length=column.string_length, pattern=column.pattern)
        case "Text":
            return Rules(min_length=column.min_length, max_length=column.max_length, pattern=column.pattern)
        case "Int" | "BigInt":
            low, high = limits.INT_RANGES[column.type]
            ge = low if column.min is None else max(low, column.min)
            le = high if column.max is None else min(high, column.max)
            return Rules(ge=_tighter_int(ge, "ge"), le=_tighter_int(le, "le"))
        case "Float":
            return Rules(ge=column.min, le=column.max)
        case "Decimal":
            assert column.precision is not None and column.scale is not None
            return Rules(
                ge=None if column.min is None else _decimal(column.min),
                le=None if column.max is None else _decimal(column.max),
                max_digits=column.precision,
                decimal_places=column.scale,
            )
    return Rules()


def _tighter_int(bound: int | float, side: Literal["ge", "le"]) -> int:
    """An integer bound meaning the same for integers as *bound* (``min: 0.5`` admits 1 and up)."""
    if isinstance(bound, int):
        return bound
    exact = decimal.Decimal(repr(bound))
    rounded = exact.to_integral_value(rounding=decimal.ROUND_CEILING if side == "ge" else decimal.ROUND_FLOOR)
    return int(rounded)


def _wire_default(column: ColumnDef) -> Any:
    """The column's default as the model shows it; None where it is computed (``now``)."""
    value = column.default
    if value is None or (column.type == "DateTime" and value == "now"):
        return None
    if column.type == "Decimal" and isinstance(value, int | float) and not isinstance(value, bool):
        return _decimal(value)
    return value


def field_shape(column: ColumnDef, kind: ModelKind) -> FieldShape:
    shape = FieldShape(
        name=column.name,
        attribute=attribute_name(column.name),
        kind=_KINDS[column.type],
        nullable=column.nullable,
        required=True,
        enum_values=tuple(column.enum.values) if column.enum is not None else (),
        description=column.description,
    )
    if kind == "read":
        return shape
    rules = rules_of(column)
    if kind == "patch":
        return dataclasses.replace(shape, required=False, rules=rules)
    required = not column.nullable and column.default is None
    default = None if required else _wire_default(column)
    return dataclasses.replace(shape, required=required, default=default, rules=rules)


def table_shapes(plugin_id: str, table: TableDef) -> tuple[ModelShape, ModelShape, ModelShape]:
    def shape(kind: ModelKind) -> ModelShape:
        columns = (_ID, *table.columns) if kind == "read" else table.columns
        fields = tuple(field_shape(c, kind) for c in columns)
        return ModelShape(model_name(plugin_id, table.name, kind), kind, fields, table.description)

    return shape("read"), shape("create"), shape("patch")


# --- shapes -> pydantic -------------------------------------------------------------------------


def storable_text(value: str) -> str:
    """Text both databases store as given: no NUL (PostgreSQL refuses it), no lone surrogate (not UTF-8)."""
    if "\x00" in value:
        raise ValueError("text must not contain the NUL character (\\u0000)")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValueError("text must not contain a lone surrogate (\\ud800-\\udfff): it is not valid Unicode")
    return value


def storable_json(value: Any) -> Any:
    """JSON both databases store as given: storable text in keys and strings, finite numbers."""
    if isinstance(value, str):
        storable_text(value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("JSON numbers must be finite (NaN and Infinity are not JSON)")
    elif isinstance(value, dict):
        for key, item in value.items():
            storable_text(key)
            storable_json(item)
    elif isinstance(value, list):
        for item in value:
            storable_json(item)
    return value


def pattern_validator(pattern: str) -> Callable[[str], str]:
    """A check that *value* contains a match of *pattern*, as PostgreSQL's ``~`` decides (RE2: linear time)."""

    def check(value: str) -> str:
        if not portable_regex.search(pattern, value):
            raise ValueError(f"text must match the pattern {pattern}")
        return value

    return check


def _constraints(shape: FieldShape) -> dict[str, Any]:
    rules = shape.rules
    found: dict[str, Any] = {}
    for key in ("min_length", "max_length", "ge", "le", "max_digits", "decimal_places"):
        value = getattr(rules, key)
        if value is not None:
            found[key] = value
    if shape.kind in ("float", "decimal"):
        found["allow_inf_nan"] = False
    if rules.pattern is not None:
        found["json_schema_extra"] = {"pattern": rules.pattern}
    return found


def base_type(shape: FieldShape, written: bool) -> Any:
    """The pydantic type of a value of *shape* (without ``| None``)."""
    kind = shape.kind
    if kind == "enum":
        return Literal[shape.enum_values]
    if kind == "json":
        return Annotated[pydantic.JsonValue, AfterValidator(storable_json)] if written else pydantic.JsonValue
    python: Any = {
        "string": str,
        "integer": int,
        "float": float,
        "decimal": decimal.Decimal,
        "boolean": bool,
        "date": datetime.date,
        "datetime": pydantic.AwareDatetime if written else datetime.datetime,
        "uuid": uuid.UUID,
    }[kind]
    if not written:
        return python
    metadata: list[Any] = []
    if kind in ("string", "integer", "float", "boolean"):
        metadata.append(pydantic.Strict())
    constraints = _constraints(shape)
    if constraints:
        metadata.append(Field(**constraints))
    if kind == "string":
        metadata.append(AfterValidator(storable_text))
        if shape.rules.pattern is not None:
            metadata.append(AfterValidator(pattern_validator(shape.rules.pattern)))
    return Annotated[python, *metadata] if metadata else python


def refuse_null(value: Any) -> Any:
    """An explicit ``null`` on a NOT NULL field: a clear error (not "Input should be a valid string")."""
    if value is None:
        raise ValueError("the field is required (NOT NULL): null is not allowed; give a value or omit the field")
    return value


def annotation(shape: FieldShape, written: bool) -> Any:
    found = base_type(shape, written)
    if shape.nullable:
        return found | None
    return Annotated[found, BeforeValidator(refuse_null)] if written else found


def field_info(shape: FieldShape) -> Any:
    """The ``Field(...)`` of *shape*: alias, description, default."""
    extra: dict[str, Any] = {}
    if shape.attribute != shape.name:
        extra["alias"] = shape.name
    if shape.description:
        extra["description"] = shape.description
    if shape.required:
        return Field(**extra)
    return Field(shape.default, **extra)


def build_model(shape: ModelShape) -> type[BaseModel]:
    written = shape.kind != "read"
    fields: dict[str, Any] = {f.attribute: (annotation(f, written), field_info(f)) for f in shape.fields}
    model: type[BaseModel] = pydantic.create_model(
        shape.name, __config__=MODEL_CONFIG, __doc__=shape.description, **fields
    )
    return model


# --- metadata -----------------------------------------------------------------------------------


def _field_metas(table: TableDef) -> dict[str, FieldMeta]:
    indexes = (*table.indexes, *table.unique_together, *table.column_indexes())
    leading = {"id", *(i.columns[0] for i in indexes if i.columns)}
    metas = {"id": FieldMeta("id", ID_TYPE, False, True, None, None, True, True)}
    for column in table.columns:
        indexed = column.name in leading
        metas[column.name] = FieldMeta(
            name=column.name,
            type=column.type,
            nullable=column.nullable,
            unique=column.unique,
            enum=column.enum.name if column.enum is not None else None,
            foreign_key=column.foreign_key,
            filterable=indexed or column.unique or column.enum is not None or column.foreign_key is not None,
            sortable=indexed,
        )
    return metas


def _relationships(resolved: Resolved) -> dict[str, dict[str, Relationship]]:
    """Per table, its relationships by name (names avoid its fields and each other)."""
    found: dict[str, dict[str, Relationship]] = {t.name: {} for t in resolved.tables}

    def add(table: str, preferred: str, fallback: str, make: Callable[[str], Relationship]) -> None:
        holder = resolved.table(table)
        if holder is None:
            return
        taken = {"id", *(c.name for c in holder.columns), *found[table]}
        name = preferred if preferred not in taken else fallback
        suffix = 2
        while name in taken:
            name, suffix = f"{fallback}_{suffix}", suffix + 1
        found[table][name] = make(name)

    own = resolved.plugin_id
    for fk in resolved.foreign_keys:
        ref = fk.references
        kind: RelationshipType = "OneToOne" if fk.unique else "ManyToOne"
        base = fk.column[:-3] if fk.column.endswith("_id") and len(fk.column) > 3 else f"{fk.column}_ref"
        add(
            fk.table,
            base,
            f"{base}_{ref.table}",
            lambda name, fk=fk, ref=ref, kind=kind: Relationship(  # type: ignore[misc]
                name, kind, ref.plugin, ref.table, fk.column, fk.referenced_column, many=False
            ),
        )
        if ref.plugin == own and ref.table in found:
            back: RelationshipType = "OneToOne" if fk.unique else "OneToMany"
            fallback = f"{fk.table}_by_{fk.column}"
            add(
                ref.table,
                fallback if fk.table == ref.table else fk.table,  # a self-reference: parent_id -> comment_by_parent_id
                fallback,
                lambda name, fk=fk, back=back: Relationship(  # type: ignore[misc]
                    name, back, own, fk.table, fk.column, fk.referenced_column, many=back == "OneToMany"
                ),
            )
    for join in resolved.joins:
        left, right = join.left, join.right
        if left.references.plugin == own:
            add(
                left.references.table,
                right.references.table if right.references != left.references else join.name,
                join.name,
                lambda name, left=left, right=right, join=join: Relationship(  # type: ignore[misc]
                    name,
                    "ManyToMany",
                    right.references.plugin,
                    right.references.table,
                    left.referenced_column,
                    right.referenced_column,
                    many=True,
                    through=join.name,
                    through_column=left.column,
                    through_target_column=right.column,
                ),
            )
        if right.references.plugin == own and right.references != left.references:
            add(
                right.references.table,
                left.references.table,
                join.name,
                lambda name, left=left, right=right, join=join: Relationship(  # type: ignore[misc]
                    name,
                    "ManyToMany",
                    left.references.plugin,
                    left.references.table,
                    right.referenced_column,
                    left.referenced_column,
                    many=True,
                    through=join.name,
                    through_column=right.column,
                    through_target_column=left.column,
                ),
            )
    return found


# --- entry point --------------------------------------------------------------------------------


def models_for(resolved: Resolved, plugin_id: str) -> dict[str, TableModels]:
    """Table name -> its models and metadata, for every table of *resolved* (join tables included)."""
    if resolved.plugin_id != plugin_id:
        raise ValueError(f"the resolved schema is plugin {resolved.plugin_id!r}, not {plugin_id!r}")
    key = id(resolved)
    cached = _CACHE.get(key)
    if cached is not None and cached[0]() is resolved:
        return dict(cached[1])
    built = _build(resolved)

    def forget(ref: weakref.ref[Resolved]) -> None:
        current = _CACHE.get(key)
        if current is not None and current[0] is ref:
            _CACHE.pop(key, None)

    _CACHE[key] = (weakref.ref(resolved, forget), built)
    return dict(built)


# Building pydantic models is not free and a resolved schema never changes (frozen): one build per
# object, forgotten with it (keyed by id: a Resolved holds lists through its enums, so it is unhashable).
_CACHE: dict[int, tuple[weakref.ref[Resolved], tuple[tuple[str, TableModels], ...]]] = {}


def _build(resolved: Resolved) -> tuple[tuple[str, TableModels], ...]:
    relationships = _relationships(resolved)
    joins = {j.name for j in resolved.joins}
    found: list[tuple[str, TableModels]] = []
    for table in resolved.tables:
        shapes = table_shapes(resolved.plugin_id, table)
        read, create, patch = (build_model(s) for s in shapes)
        found.append(
            (
                table.name,
                TableModels(
                    plugin_id=resolved.plugin_id,
                    table=table.name,
                    read=read,
                    create=create,
                    patch=patch,
                    fields=_field_metas(table),
                    relationships=relationships[table.name],
                    join_table=table.name in joins,
                    shapes=shapes,
                ),
            )
        )
    return tuple(found)


def python_pattern(pattern: str) -> str:
    """*pattern* for Python's :mod:`re` with PostgreSQL's meaning: ``.`` matches a newline, ``$``
    only the very end (``\\Z``). For emitted code, which cannot rely on RE2 being installed."""
    out: list[str] = []
    position = 0
    while position < len(pattern):
        char = pattern[position]
        if char == "\\":
            out.append(pattern[position : position + 2])
            position += 2
        elif char == "[":
            end = min(portable_regex._class_end(pattern, position), len(pattern))
            out.append(pattern[position:end])
            position = end
        else:
            out.append(r"\Z" if char == "$" else char)
            position += 1
    return "(?s)" + "".join(out)


def python_search(pattern: str, value: str) -> bool:
    """What emitted code evaluates (tests compare it with :func:`portable_regex.search`)."""
    return re.search(python_pattern(pattern), value) is not None
