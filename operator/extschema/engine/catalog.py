"""Reading the live database: the host application's tables and the plugin tables that exist now.

What the registry says is compared against this (status shows a table dropped by hand; delete
skips objects already gone), so these reads never trust the registry and never write.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from extschema import naming
from extschema.dialects import Dialect
from extschema.engine.connection import Database
from extschema.model import FieldType
from extschema.planning import IndexDef

if TYPE_CHECKING:
    from extschema import prisma  # only for `prisma`/`types`: status and apply do not import it

#: Table name prefixes that are extschema's own, never the host application's.
_OWN_PREFIXES = ("ext_", "extension_", naming.BACKUP_SCHEMA, "sqlite_")


def core_catalog(
    database: Database, columns_of: Collection[str] | None = None
) -> dict[tuple[str, str], dict[str, FieldType | None]]:
    """The host application's tables (those extschema does not own) and their columns' types.

    Every table is listed (names can collide with plugin tables on SQLite); columns are read
    only for *columns_of* when given — reflecting columns is the slow part on PostgreSQL.
    """
    dialect = database.dialect
    catalog: dict[tuple[str, str], dict[str, FieldType | None]] = {}
    with database.reading() as conn:
        inspector = sa.inspect(conn)
        schema = dialect.namer.core_schema
        for table in inspector.get_table_names(schema=schema):
            if table.startswith(_OWN_PREFIXES):
                continue
            if columns_of is not None and table not in columns_of:
                catalog[("core", table)] = {}
                continue
            found = inspector.get_columns(table, schema=schema)
            catalog[("core", table)] = {c["name"]: dialect.logical_type(c["type"]) for c in found}
    return catalog


def core_description(database: Database) -> prisma.CoreSchema:
    """The host application's tables as a Prisma schema needs them: columns and their types,
    defaults, keys, indexes, foreign keys, and the enum types of the core schema (reads only)."""
    from extschema import prisma

    dialect = database.dialect
    schema = dialect.namer.core_schema
    with database.reading() as conn:
        inspector = sa.inspect(conn)
        enums: dict[str, tuple[str, ...]] = {}
        if schema is not None and hasattr(inspector, "get_enums"):  # PostgreSQL's inspector
            enums = {e["name"]: tuple(e["labels"]) for e in inspector.get_enums(schema=schema)}
        names = [t for t in inspector.get_table_names(schema=schema) if not t.startswith(_OWN_PREFIXES)]
        tables = tuple(_core_table(inspector, dialect, schema, name) for name in sorted(names))
    return prisma.CoreSchema(schema if dialect.namer.style == "schema" else None, tables, enums)


def _core_table(inspector: sa.Inspector, dialect: Dialect, schema: str | None, name: str) -> prisma.CoreTable:
    from extschema import prisma

    key = inspector.get_pk_constraint(name, schema=schema)
    primary = tuple(key.get("constrained_columns") or ())
    columns = []
    for found in inspector.get_columns(name, schema=schema):
        sql_type = found["type"]
        kind = dialect.type_kind(sql_type)
        try:
            native = type_text(dialect, sql_type)
        except sa.exc.CompileError:  # a type SQLAlchemy cannot write back (NullType)
            native = str(getattr(sql_type, "name", "") or type(sql_type).__name__)
        rowid = dialect.rowid_primary_key and primary == (found["name"],) and kind in ("int", "bigint")
        columns.append(
            prisma.CoreColumn(
                name=found["name"],
                kind=kind,
                nullable=bool(found["nullable"]) and found["name"] not in primary,
                length=getattr(sql_type, "length", None) if kind in ("varchar", "char") else None,
                precision=getattr(sql_type, "precision", None)
                if kind in ("numeric", "timestamp", "timestamptz")
                else None,
                scale=getattr(sql_type, "scale", None) if kind == "numeric" else None,
                enum=getattr(sql_type, "name", None) if kind == "enum" else None,
                native=native,
                default=None if found.get("default") is None else str(found["default"]),
                autoincrement=rowid or "identity" in found or "nextval(" in str(found.get("default") or ""),
            )
        )
    indexes = [
        prisma.CoreIndex(index, tuple(columns), unique)
        for index, columns, unique in dialect.core_indexes(inspector, name, schema)
    ]
    indexes.extend(
        prisma.CoreIndex(unique["name"], tuple(unique["column_names"]), True)
        for unique in inspector.get_unique_constraints(name, schema=schema)
    )
    foreign_keys = tuple(
        prisma.CoreForeignKey(
            fk.name,
            fk.columns,
            fk.referred_table if fk.referred_schema in (None, schema) else None,
            fk.referred_columns,
            fk.on_delete,
        )
        for fk in dialect.core_foreign_keys(inspector, name, schema)
    )
    return prisma.CoreTable(name, tuple(columns), primary, key.get("name"), tuple(indexes), foreign_keys)


def physical_tables(database: Database, plugin_id: str) -> list[str]:
    """Tables of the plugin that exist in the database right now, named as the registry names them."""
    with database.reading() as conn:
        return plugin_tables(conn, database.dialect, plugin_id)


def plugin_objects(database: Database, plugin_id: str) -> list[str]:
    """What of the plugin exists right now (tables, and on PostgreSQL its schema and types)."""
    with database.reading() as conn:
        return database.dialect.plugin_objects(sa.inspect(conn), plugin_id)


def plugin_tables(conn: sa.Connection, dialect: Dialect, plugin_id: str) -> list[str]:
    """:func:`physical_tables`, read in *conn*'s transaction (a migration's, under its lock)."""
    return dialect.plugin_tables(sa.inspect(conn), plugin_id)


# --- a plugin's objects as they are (for drift) -------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LiveColumn:
    #: The type as this database's DDL writes it (``VARCHAR(255)``, ``ext_shop.state``), to compare
    #: with the type the dialect would create.
    type: str
    nullable: bool


@dataclasses.dataclass(frozen=True)
class LiveTable:
    columns: dict[str, LiveColumn]
    #: Indexes and unique constraints by name (a unique constraint's own index is not listed twice).
    indexes: dict[str, IndexDef]
    #: Views and triggers tied to the table that a rebuild would drop or break (SQLite: ``view dba_v``).
    tied: tuple[str, ...] = ()
    #: CHECK constraints' conditions by name, where the dialect asks for them (``reads_checks``).
    checks: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class LivePlugin:
    """What of one plugin exists in the database now."""

    #: The plugin's own schema where the database has schemas (None: plugins share one namespace).
    namespace: str | None
    namespace_exists: bool
    #: Native enum types and their values in order (None where the database has no native enums).
    enums: dict[str, list[str]] | None
    #: Every table of the plugin, by the name the registry lists (``ext_shop.order``, ``ext_shop__order``).
    tables: dict[str, LiveTable]


def type_text(dialect: Dialect, sql_type: sa.types.TypeEngine[Any]) -> str:
    """A column type as *dialect*'s DDL writes it: reflected and planned types compare by this text."""
    return str(dialect.sa_dialect.type_compiler_instance.process(sql_type))


def live_plugin(inspector: sa.Inspector, dialect: Dialect, plugin_id: str) -> LivePlugin:
    """Reflect the plugin's namespace, enum types, tables, columns and indexes (reads only)."""
    namespace = dialect.namer.table(plugin_id, "").schema
    exists = namespace is None or inspector.has_schema(namespace)
    enums: dict[str, list[str]] | None = None
    if namespace is not None and hasattr(inspector, "get_enums"):  # PostgreSQL's inspector
        found = inspector.get_enums(schema=namespace) if exists else []
        enums = {e["name"]: list(e["labels"]) for e in found}
    tables = {}
    found_tables = dialect.plugin_tables(inspector, plugin_id) if exists else []
    assert isinstance(inspector.bind, sa.Connection)
    tied = dialect.tied_objects(inspector.bind, [p.rpartition(".")[2] for p in found_tables])
    for physical in found_tables:
        schema, _, name = physical.rpartition(".")
        others = tuple(t for t in tied[name] if not t.startswith("index "))  # indexes: reflected below
        tables[physical] = dataclasses.replace(_live_table(inspector, dialect, name, schema or None), tied=others)
    return LivePlugin(namespace, exists, enums, tables)


def _live_table(inspector: sa.Inspector, dialect: Dialect, name: str, schema: str | None) -> LiveTable:
    columns = {
        c["name"]: LiveColumn(type_text(dialect, c["type"]), bool(c["nullable"]))
        for c in inspector.get_columns(name, schema=schema)
    }
    indexes: dict[str, IndexDef] = {}
    for index in inspector.get_indexes(name, schema=schema):
        if index["name"] is not None and not index.get("duplicates_constraint"):
            indexes[index["name"]] = IndexDef(tuple(str(c) for c in index["column_names"]), bool(index["unique"]))
    for unique in inspector.get_unique_constraints(name, schema=schema):
        if unique["name"]:
            indexes[unique["name"]] = IndexDef(tuple(unique["column_names"]), True)
    checks = {}
    if dialect.reads_checks:
        checks = {c["name"]: c["sqltext"] for c in inspector.get_check_constraints(name, schema=schema) if c["name"]}
    return LiveTable(columns, indexes, checks=checks)
