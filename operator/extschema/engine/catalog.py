"""Reading the live database: the host application's tables and the plugin tables that exist now.

What the registry says is compared against this (status shows a table dropped by hand; delete
skips objects already gone), so these reads never trust the registry and never write.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import sqlalchemy as sa

from extschema import model, naming, planning
from extschema.dialects import Dialect
from extschema.engine.connection import Database
from extschema.model import ExtensionSchemaSpec, FieldType

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


def reference_types(
    database: Database, registered: Iterable[ExtensionSchemaSpec], spec: ExtensionSchemaSpec
) -> dict[tuple[str, str], dict[str, FieldType | None]]:
    """What resolving *spec* outside reconcile needs (a restore re-applying it, drift comparing it):
    the core tables it references, as they are now, and the columns of the *registered* plugins."""
    targets = (model.parse_target(rel.target, spec.plugin_id) for rel in spec.relationships)
    found = core_catalog(database, {t.table for t in targets if t is not None and t.is_core})
    for other in [*registered, spec]:
        found.update(planning.reference_types_of(other))
    return found
