"""A Prisma schema of the plugins' tables (and the host's core tables): pure, from resolved specs.

The output is what ``prisma format`` would write (tests compare), so a host can commit it as it is:
models carry ``@@map``/``@map`` to the physical names extschema creates (:mod:`extschema.naming`),
``@@schema`` on PostgreSQL, the native types the dialects create, and ``map:`` on indexes, unique
constraints and foreign keys with extschema's own names. Model names are the plugin's id and the
table's name in PascalCase (``customreports`` + ``report`` -> ``CustomreportsReport``), core tables
their own name (``work_orders`` -> ``WorkOrders``); a name already taken gets a number.

The *complete* schema holds the core tables (as :class:`CoreSchema` describes them, read from the
database by :mod:`extschema.engine.catalog`) with the back-relations plugins add to them; the
*fragment* holds the plugins' models only, with scalar foreign keys to models it does not define.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from extschema import model, naming, planning
from extschema.model import EnumSpec, ExtensionSchemaSpec
from extschema.planning import ColumnDef, IndexDef, Resolved, TableDef
from extschema.problems import Kind, Problem, ProblemError

Provider = Literal["postgresql", "sqlite"]
PROVIDERS: tuple[Provider, ...] = ("postgresql", "sqlite")

# --- the core tables, as the database describes them --------------------------------------------


@dataclasses.dataclass(frozen=True)
class CoreColumn:
    """A column of a host table. *kind* is one of :data:`CORE_KINDS`; anything else is ``other``."""

    name: str
    kind: str
    nullable: bool
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    #: For kind ``enum``: the enum type's name (in the core schema).
    enum: str | None = None
    #: The type as the database writes it (for ``Unsupported("...")``).
    native: str = ""
    #: The DEFAULT expression as the database reports it.
    default: str | None = None
    autoincrement: bool = False


CORE_KINDS = frozenset(
    {
        "smallint", "int", "bigint", "varchar", "char", "text", "boolean", "numeric", "double", "real",
        "date", "timestamp", "timestamptz", "time", "json", "jsonb", "uuid", "bytes", "enum",
    }
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class CoreIndex:
    name: str | None
    columns: tuple[str, ...]
    unique: bool


@dataclasses.dataclass(frozen=True)
class CoreForeignKey:
    name: str | None
    columns: tuple[str, ...]
    #: The referenced table; None when it lies outside the core schema (kept as plain columns).
    table: str | None
    referenced: tuple[str, ...]
    #: As the database says it: CASCADE, SET NULL, RESTRICT, NO ACTION, SET DEFAULT (None: NO ACTION).
    on_delete: str | None = None


@dataclasses.dataclass(frozen=True)
class CoreTable:
    name: str
    columns: tuple[CoreColumn, ...]
    primary_key: tuple[str, ...] = ()
    primary_key_name: str | None = None
    indexes: tuple[CoreIndex, ...] = ()
    foreign_keys: tuple[CoreForeignKey, ...] = ()


@dataclasses.dataclass(frozen=True)
class CoreSchema:
    """The host's tables: *schema* is their PostgreSQL schema (None on SQLite)."""

    schema: str | None
    tables: tuple[CoreTable, ...] = ()
    enums: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


# --- names --------------------------------------------------------------------------------------

_WORDS = re.compile(r"[A-Za-z0-9]+")
#: Names Prisma keeps for itself (scalar types, the client's own), refused as model or enum names.
_RESERVED_TYPES = frozenset(
    {"String", "Boolean", "Int", "BigInt", "Float", "Decimal", "DateTime", "Json", "Bytes", "Unsupported",
     "Prisma", "PrismaClient"}
)  # fmt: skip


def pascal(name: str) -> str:
    """``work_orders`` -> ``WorkOrders``; a name without letters or digits first becomes ``T...``."""
    words = _WORDS.findall(name)
    text = "".join(w[0].upper() + w[1:] for w in words)
    return text if text[:1].isalpha() else f"T{text}"


def camel(name: str) -> str:
    """``work_order_id`` -> ``workOrderId``."""
    text = pascal(name)
    text = text[0].lower() + text[1:]
    return text if text[:1].isalpha() else f"f{text}"


def _free(name: str, taken: set[str]) -> str:
    """*name*, or *name* with the lowest number from 2 that is not taken; marks it taken."""
    found, n = name, 2
    while found in taken or found in _RESERVED_TYPES:
        found, n = f"{name}{n}", n + 1
    taken.add(found)
    return found


def _string(text: str) -> str:
    """A Prisma string literal (JSON's escapes, which Prisma reads)."""
    return json.dumps(text, ensure_ascii=False)


def _number(value: int | float | decimal.Decimal) -> str:
    """A number as Prisma reads it: no exponent."""
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, int):
        return str(value)
    text = format(decimal.Decimal(repr(value)) if isinstance(value, float) else value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


# --- the model being built ----------------------------------------------------------------------

Key = tuple[str, str]  # (plugin id or "core", table)


@dataclasses.dataclass
class _Field:
    name: str
    type: str
    modifier: str = ""  # "", "?", "[]"
    attributes: list[str] = dataclasses.field(default_factory=list)
    docs: str | None = None
    column: str | None = None  # the physical column (None: a relation field)


@dataclasses.dataclass
class _Model:
    key: Key
    name: str
    db_name: str
    schema: str | None
    fields: list[_Field] = dataclasses.field(default_factory=list)
    block: list[str] = dataclasses.field(default_factory=list)
    docs: str | None = None
    ignored: bool = False

    def field_of(self, column: str) -> _Field:
        return next(f for f in self.fields if f.column == column)

    def names(self) -> set[str]:
        return {f.name for f in self.fields}


@dataclasses.dataclass
class _Enum:
    key: Key
    name: str
    db_name: str
    schema: str | None
    values: list[tuple[str, str]]  # (Prisma name, database label)

    def value_name(self, label: str) -> str | None:
        return next((n for n, v in self.values if v == label), None)


@dataclasses.dataclass(frozen=True)
class _Relation:
    source: Key
    columns: tuple[str, ...]
    target: Key
    referenced: tuple[str, ...]
    on_delete: str  # Prisma's: Cascade, SetNull, Restrict, NoAction, SetDefault
    name: str | None  # the constraint's


_ON_DELETE_SQL = {"CASCADE": "Cascade", "SET NULL": "SetNull", "RESTRICT": "Restrict", "SET DEFAULT": "SetDefault"}


@dataclasses.dataclass(frozen=True)
class Schema:
    """An emitted schema: its text and the physical names of the plugins' tables and enum types."""

    text: str
    #: ``schema.table`` on PostgreSQL, the table's name on SQLite: Prisma's ``tables.external``.
    external_tables: tuple[str, ...]
    #: ``schema.type`` of the plugins' enum types (PostgreSQL; SQLite has none): ``enums.external``.
    external_enums: tuple[str, ...]

    def config(self) -> dict[str, object]:
        """What to add to ``defineConfig({...})`` in the host's ``prisma.config.ts``."""
        return {
            "experimental": {"externalTables": True},
            "tables": {"external": list(self.external_tables)},
            "enums": {"external": list(self.external_enums)},
        }


def emit(
    plugins: Sequence[Resolved],
    provider: Provider,
    core: CoreSchema | None = None,
    fragment: bool = False,
) -> Schema:
    """The Prisma schema of *plugins* (resolved against the database's references) for *provider*.

    With *core* (needed unless *fragment*), the core tables become models too and get the
    back-relations; a *fragment* has the plugins' models only, without a datasource block.
    """
    return _Builder(provider, core if not fragment else None, fragment).build(
        sorted(plugins, key=lambda p: p.plugin_id)
    )


def offline(specs: Sequence[ExtensionSchemaSpec], fragment: bool, files: Sequence[str] | None = None) -> list[Resolved]:
    """*specs* (read from *files*) resolved without a database: only as a fragment, referencing only
    each other (ES732, ES733)."""
    if not fragment:
        message = (
            "a complete Prisma schema holds the core tables, which only the database describes: "
            "give --database URL, or --fragment for the plugins' models alone"
        )
        raise ProblemError.one("ES732", "--provider", message, kind=Kind.USAGE)
    given = {spec.plugin_id for spec in specs}
    refs: dict[tuple[str, str], dict[str, model.FieldType | None]] = {}
    for number, spec in enumerate(specs):
        refs.update(planning.reference_types_of(spec))
        for index, relationship in enumerate(spec.relationships):
            target = model.parse_target(relationship.target, spec.plugin_id)
            if target is not None and (target.is_core or target.plugin not in given):
                what = "the core table" if target.is_core else "a table of plugin"
                message = (
                    f"{spec.plugin_id}: the relationship to {relationship.target} references {what} "
                    f"{target.table if target.is_core else target.plugin}, whose column types only the database knows: "
                    "give --database URL"
                    + ("" if target.is_core else f", or add plugin {target.plugin}'s file to the PATHs")
                )
                problem = Problem(
                    "ES733", f"spec.relationships[{index}]", message, file=files[number] if files else None
                )
                raise ProblemError([problem], Kind.USAGE)
    return [planning.resolve(spec, refs) for spec in specs]


class _Builder:
    def __init__(self, provider: Provider, core: CoreSchema | None, fragment: bool) -> None:
        self.provider = provider
        self.core = core
        self.fragment = fragment
        # The names the dialect gives what it creates: per plugin schema (PostgreSQL) or prefixed (SQLite).
        self.namer = (
            naming.Namer("schema", core.schema if core else None)
            if provider == "postgresql"
            else naming.Namer("prefix")
        )
        self.taken: set[str] = set()
        self.models: dict[Key, _Model] = {}
        self.enums: dict[Key, _Enum] = {}
        self.relations: list[_Relation] = []
        self.schemas: set[str] = set()

    @property
    def native(self) -> bool:
        return self.provider == "postgresql"

    # --- physical names ---

    def table_name(self, plugin_id: str, table: str) -> naming.PhysicalName:
        return self.namer.table(plugin_id, table)

    def index_name(self, plugin_id: str, table: str, index: IndexDef) -> str:
        return self.namer.index(plugin_id, table, index.columns, index.unique, index.name)

    def fk_name(self, plugin_id: str, table: str, column: str) -> str:
        return self.namer.derived(plugin_id, table, [column], "fkey")

    # --- building ---

    def build(self, plugins: Sequence[Resolved]) -> Schema:
        if self.core is not None:
            self.add_core(self.core)
        for plugin in plugins:
            for enum in plugin.enums:
                self.add_plugin_enum(plugin.plugin_id, enum)
        for plugin in plugins:
            for table in plugin.tables:
                self.add_plugin_table(plugin.plugin_id, table)
        self.add_relations()
        return Schema(self.render(), *self.external(plugins))

    def add_core(self, core: CoreSchema) -> None:
        for enum_name, labels in sorted(core.enums.items()):
            self.add_enum(("core", enum_name), pascal(enum_name), enum_name, core.schema, labels)
        for table in sorted(core.tables, key=lambda t: t.name):
            self.add_core_table(core, table)

    def add_enum(self, key: Key, name: str, db_name: str, schema: str | None, labels: Iterable[str]) -> None:
        taken_values: set[str] = set()
        values = []
        for label in labels:
            base = re.sub(r"[^A-Za-z0-9_]", "_", label)
            base = base if base[:1].isalpha() else f"v{base}"
            values.append((_free(base, taken_values), label))
        self.enums[key] = _Enum(key, _free(name, self.taken), db_name, schema, values)
        if schema:
            self.schemas.add(schema)

    def add_plugin_enum(self, plugin_id: str, enum: EnumSpec) -> None:
        schema = naming.plugin_schema(plugin_id) if self.native else None
        self.add_enum((plugin_id, enum.name), pascal(plugin_id) + pascal(enum.name), enum.name, schema, enum.values)

    def new_model(self, key: Key, name: str, db_name: str, schema: str | None, docs: str | None = None) -> _Model:
        found = _Model(key, _free(name, self.taken), db_name, schema, docs=docs)
        self.models[key] = found
        if schema:
            self.schemas.add(schema)
        return found

    def add_core_table(self, core: CoreSchema, table: CoreTable) -> None:
        schema = core.schema if self.native else None
        built = self.new_model(("core", table.name), pascal(table.name), table.name, schema)
        names: set[str] = set()
        single_unique = {i.columns[0]: i for i in table.indexes if i.unique and len(i.columns) == 1}
        for column in table.columns:
            type_, native = self.core_type(column)
            attributes = []
            if table.primary_key == (column.name,):
                attributes.append("@id" + self.pk_map(table))
            elif column.name in single_unique:
                attributes.append("@unique" + self.map_arg(single_unique[column.name].name, first=True))
            default = self.core_default(column, type_)
            if default:
                attributes.append(f"@default({default})")
            name = _free(camel(column.name), names)
            attributes.extend(_column_map(name, column.name))
            if native and self.native:
                attributes.append(native)
            built.fields.append(_Field(name, type_, "?" if column.nullable else "", attributes, column=column.name))
        if len(table.primary_key) > 1:
            columns = ", ".join(built.field_of(c).name for c in table.primary_key)
            built.block.append(f"@@id([{columns}]{self.pk_map(table, inner=True)})")
        seen: set[tuple[tuple[str, ...], bool]] = {(c, True) for c in ((k,) for k in single_unique)}
        for index in table.indexes:
            if (index.columns, index.unique) in seen or (index.unique and index.columns == table.primary_key):
                continue
            seen.add((index.columns, index.unique))
            columns = ", ".join(built.field_of(c).name for c in index.columns)
            kind = "@@unique" if index.unique else "@@index"
            built.block.append(f"{kind}([{columns}]{self.map_arg(index.name)})")
        if not table.primary_key and not any(i.unique for i in table.indexes):
            built.ignored = True  # Prisma needs a unique key to address rows: rendered with @@ignore
        for fk in table.foreign_keys:
            if fk.table is None:
                continue
            action = _ON_DELETE_SQL.get((fk.on_delete or "").upper(), "NoAction")
            self.relations.append(_Relation(built.key, fk.columns, ("core", fk.table), fk.referenced, action, fk.name))

    def pk_map(self, table: CoreTable, inner: bool = False) -> str:
        name = table.primary_key_name
        if not self.native or not name or name == f"{table.name}_pkey":
            return ""
        return f", map: {_string(name)}" if inner else f"(map: {_string(name)})"

    def map_arg(self, name: str | None, first: bool = False) -> str:
        """``, map: "NAME"`` (or ``(map: "NAME")`` as the only argument) where a name is known."""
        if not name:
            return ""
        return f"(map: {_string(name)})" if first else f", map: {_string(name)}"

    def core_type(self, column: CoreColumn) -> tuple[str, str | None]:
        """The Prisma type and native type attribute of a core column."""
        kind = column.kind
        if kind == "enum" and column.enum is not None and ("core", column.enum) in self.enums:
            return self.enums[("core", column.enum)].name, None
        match kind:
            case "smallint":
                return "Int", "@db.SmallInt"
            case "int":
                return "Int", None
            case "bigint":
                return "BigInt", None
            case "varchar":
                return "String", f"@db.VarChar({column.length})" if column.length else "@db.VarChar"
            case "char":
                return "String", f"@db.Char({column.length})" if column.length else "@db.Char"
            case "text":
                return "String", None
            case "boolean":
                return "Boolean", None
            case "numeric":
                if column.precision is None:
                    return "Decimal", None
                return "Decimal", f"@db.Decimal({column.precision}, {column.scale or 0})"
            case "double":
                return "Float", None
            case "real":
                return "Float", "@db.Real"
            case "date":
                return "DateTime", "@db.Date"
            case "timestamp":
                return "DateTime", f"@db.Timestamp({6 if column.precision is None else column.precision})"
            case "timestamptz":
                return "DateTime", f"@db.Timestamptz({6 if column.precision is None else column.precision})"
            case "time":
                return "DateTime", "@db.Time(6)"
            case "json":
                return "Json", "@db.Json"
            case "jsonb":
                return "Json", None
            case "uuid":
                return "String", "@db.Uuid"
            case "bytes":
                return "Bytes", None
        return f"Unsupported({_string(column.native or 'unknown')})", None

    def core_default(self, column: CoreColumn, type_: str) -> str | None:
        if column.autoincrement:
            return "autoincrement()"
        text = column.default
        if text is None or type_.startswith("Unsupported"):
            return None
        text = text.strip()
        literal = re.fullmatch(r"\(?'((?:[^']|'')*)'\)?(?:::[\w .\"]+(?:\[\])?)?", text)
        value = literal.group(1).replace("''", "'") if literal else text.strip("()")
        if type_ == "DateTime" and re.fullmatch(r"(?i)(now\(\)|current_timestamp(\(\d*\))?|localtimestamp)", text):
            return "now()"
        if type_ == "String" and literal:
            return _string(value)
        if type_ == "Boolean" and value.lower() in ("true", "false", "1", "0"):
            return "true" if value.lower() in ("true", "1") else "false"
        if type_ in ("Int", "BigInt", "Float", "Decimal") and re.fullmatch(r"-?\d+(\.\d+)?", value):
            return _number(decimal.Decimal(value)) if "." in value else value
        enum = next((e for e in self.enums.values() if e.name == type_), None)
        if enum is not None and literal and enum.value_name(value) is not None:
            return enum.value_name(value)
        return f"dbgenerated({_string(text)})"

    def add_plugin_table(self, plugin_id: str, table: TableDef) -> None:
        physical = self.table_name(plugin_id, table.name)
        key = (plugin_id, table.name)
        built = self.new_model(
            key, pascal(plugin_id) + pascal(table.name), physical.name, physical.schema, table.description
        )
        names = {"id"}
        built.fields.append(_Field("id", "BigInt", "", ["@id", "@default(autoincrement())"], column="id"))
        column_indexes = table.column_indexes()
        uniques = {i.columns[0]: i for i in column_indexes if i.unique}
        for column in table.columns:
            type_, native = self.plugin_type(plugin_id, column)
            attributes = []
            if column.name in uniques:
                attributes.append(
                    "@unique" + self.map_arg(self.index_name(plugin_id, table.name, uniques[column.name]), True)
                )
            default = self.plugin_default(plugin_id, column)
            if default is not None:
                attributes.append(f"@default({default})")
            name = _free(camel(column.name), names)
            attributes.extend(_column_map(name, column.name))
            if native and self.native:
                attributes.append(native)
            modifier = "?" if column.nullable else ""
            built.fields.append(_Field(name, type_, modifier, attributes, column.description, column.name))
            fk = column.foreign_key
            if fk is not None:
                target = (
                    ("core", fk.references.table)
                    if fk.references.is_core
                    else (fk.references.plugin, fk.references.table)
                )
                constraint = self.fk_name(plugin_id, table.name, column.name) if self.native else None
                self.relations.append(_Relation(key, (column.name,), target, (fk.column,), fk.on_delete, constraint))
        seen: set[tuple[tuple[str, ...], bool]] = {((c,), True) for c in uniques}
        for index in (*(i for i in column_indexes if not i.unique), *table.unique_together, *table.indexes):
            if (index.columns, index.unique) in seen:
                continue
            seen.add((index.columns, index.unique))
            columns = ", ".join(built.field_of(c).name for c in index.columns)
            kind = "@@unique" if index.unique else "@@index"
            built.block.append(f"{kind}([{columns}]{self.map_arg(self.index_name(plugin_id, table.name, index))})")

    def plugin_type(self, plugin_id: str, column: ColumnDef) -> tuple[str, str | None]:
        match column.type:
            case "String":
                return "String", f"@db.VarChar({column.string_length})"
            case "Text":
                return "String", None
            case "Int" | "BigInt" | "Float" | "Boolean" | "Json":
                return column.type, None
            case "Date":
                return "DateTime", "@db.Date"
            case "DateTime":
                return "DateTime", "@db.Timestamptz(6)"
            case "Decimal":
                return "Decimal", f"@db.Decimal({column.precision}, {column.scale})"
            case "Uuid":
                return "String", "@db.Uuid"
            case "Enum":
                assert column.enum is not None
                return self.enums[(plugin_id, column.enum.name)].name, None
        raise AssertionError(f"no Prisma type for {column.type}")

    def plugin_default(self, plugin_id: str, column: ColumnDef) -> str | None:
        value = column.default
        if value is None:
            return None
        match column.type:
            case "Boolean":
                return "true" if value else "false"
            case "Int" | "BigInt" | "Float" | "Decimal":
                assert isinstance(value, int | float) and not isinstance(value, bool)
                return _number(value)
            case "Enum":
                assert column.enum is not None
                return self.enums[(plugin_id, column.enum.name)].value_name(str(value))
            case "Json":
                return _string(json.dumps(value))
            case "DateTime":
                if value == "now":
                    return "now()"
                return _string(datetime.datetime.fromisoformat(str(value)).isoformat())
            case "Date":
                return _string(f"{value}T00:00:00Z")
        return _string(str(value))

    def add_relations(self) -> None:
        usable = [
            r
            for r in self.relations
            if r.target in self.models and not self.models[r.target].ignored and not self.models[r.source].ignored
        ]
        # Prisma names relations per pair of models, whichever way each one points: two relations between
        # the same two models (a -> b and b -> a too) need names on both ends.
        pairs: dict[frozenset[Key], int] = {}
        for relation in usable:
            pair = frozenset((relation.source, relation.target))
            pairs[pair] = pairs.get(pair, 0) + 1
        for relation in usable:
            source, target = self.models[relation.source], self.models[relation.target]
            scalars = [source.field_of(c) for c in relation.columns]
            try:
                referenced = [target.field_of(c) for c in relation.referenced]
            except StopIteration:
                continue  # a referenced column the description does not have: keep the scalar
            if [s.type for s in scalars] != [r.type for r in referenced]:
                continue  # Prisma relates equal types only (a BigInt column may reference an INTEGER key)
            references = [r.name for r in referenced]
            first = relation.columns[0]
            # work_order_id -> workOrder; a column without _id names the relation with Ref after it.
            wanted = camel(first[: -len("_id")]) if first.endswith("_id") and first != "_id" else camel(first) + "Ref"
            field_name = _free(wanted, source.names())
            ambiguous = pairs[frozenset((relation.source, relation.target))] > 1 or relation.source == relation.target
            relation_name = f"{source.name}{pascal(field_name)}" if ambiguous else None
            optional = any(s.modifier == "?" for s in scalars)
            arguments = [_string(relation_name)] if relation_name else []
            arguments += [
                f"fields: [{', '.join(s.name for s in scalars)}]",
                f"references: [{', '.join(references)}]",
                f"onDelete: {relation.on_delete}",
                "onUpdate: NoAction",
            ]
            if relation.name and self.native:
                arguments.append(f"map: {_string(relation.name)}")
            attribute = f"@relation({', '.join(arguments)})"
            source.fields.append(_Field(field_name, target.name, "?" if optional else "", [attribute]))
            one = self.is_unique(source, relation.columns)
            back = source.name[0].lower() + source.name[1:] + ("" if one or source.name.endswith("s") else "s")
            if ambiguous:
                back += f"By{pascal(field_name)}"
            back_attributes = [f"@relation({_string(relation_name)})"] if relation_name else []
            target.fields.append(
                _Field(_free(back, target.names()), source.name, "?" if one else "[]", back_attributes)
            )

    def is_unique(self, built: _Model, columns: tuple[str, ...]) -> bool:
        names = [built.field_of(c).name for c in columns]
        if len(names) == 1:
            field = built.field_of(columns[0])
            if any(a == "@id" or a.startswith(("@unique", "@id(")) for a in field.attributes):
                return True
        listed = f"[{', '.join(names)}]"
        return any(b.startswith((f"@@unique({listed}", f"@@id({listed}")) for b in built.block)

    # --- text ---

    def render(self) -> str:
        blocks: list[str] = []
        header = "// Generated by `extschema prisma`"
        if self.fragment:
            header += " --fragment: the plugins' models, for a schema folder next to the host's own file."
            if self.native and self.schemas:
                schemas = ", ".join(_string(s) for s in sorted(self.schemas))
                header += f"\n// The datasource's schemas must include {schemas}."
        blocks.append(header)
        if not self.fragment:
            lines = [("provider", _string(self.provider))]
            if self.native:
                lines.append(("schemas", "[" + ", ".join(_string(s) for s in sorted(self.schemas)) + "]"))
            width = max(len(k) for k, _ in lines)
            blocks.append("datasource db {\n" + "".join(f"  {k:<{width}} = {v}\n" for k, v in lines) + "}")
        for built in self.models.values():
            blocks.append(self.render_model(built))
        for enum in self.enums.values():
            blocks.append(self.render_enum(enum))
        return "\n\n".join(blocks) + "\n"

    def render_model(self, built: _Model) -> str:
        # prisma format orders them so: @@id, @@unique, @@index, then the rest as written.
        block = sorted(
            built.block, key=lambda line: next((i for i, p in enumerate(_BLOCK_ORDER) if line.startswith(p)), 3)
        )
        if built.name != built.db_name:
            block.append(f"@@map({_string(built.db_name)})")
        if built.ignored:
            block.append("@@ignore")  # prisma format puts it after @@map, before @@schema
        if built.schema and self.native:
            block.append(f"@@schema({_string(built.schema)})")
        rows = [(f.name, f.type + f.modifier, " ".join(f.attributes), f.docs) for f in built.fields]
        return _docs(built.docs, "") + f"model {built.name} {{\n" + _table(rows) + _block(block) + "}"

    def render_enum(self, enum: _Enum) -> str:
        block = []
        if self.native:
            if enum.name != enum.db_name:
                block.append(f"@@map({_string(enum.db_name)})")
            if enum.schema:
                block.append(f"@@schema({_string(enum.schema)})")
        rows = [(name, f"@map({_string(label)})" if name != label else "", "", None) for name, label in enum.values]
        return f"enum {enum.name} {{\n" + _table(rows) + _block(block) + "}"

    def external(self, plugins: Sequence[Resolved]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        tables = tuple(str(self.table_name(p.plugin_id, t.name)) for p in plugins for t in p.tables)
        enums = (
            tuple(f"{naming.plugin_schema(p.plugin_id)}.{e.name}" for p in plugins for e in p.enums)
            if self.native
            else ()
        )
        return tables, enums


_BLOCK_ORDER = ("@@id(", "@@unique(", "@@index(")


def _column_map(name: str, column: str) -> list[str]:
    return [f"@map({_string(column)})"] if name != column else []


def _docs(text: str | None, indent: str) -> str:
    if not text:
        return ""
    return "".join(f"{indent}/// {line}".rstrip() + "\n" for line in text.splitlines() or [""])


def _table(rows: Sequence[tuple[str, str, str, str | None]]) -> str:
    """Rows aligned in columns as ``prisma format`` aligns them (trailing blanks dropped)."""
    first = max((len(r[0]) for r in rows), default=0)
    second = max((len(r[1]) for r in rows), default=0)
    out = []
    for name, type_, attributes, docs in rows:
        out.append(_docs(docs, "  ") + f"  {name:<{first}} {type_:<{second}} {attributes}".rstrip() + "\n")
    return "".join(out)


def _block(lines: Sequence[str]) -> str:
    return "\n" + "".join(f"  {line}\n" for line in lines) if lines else ""
