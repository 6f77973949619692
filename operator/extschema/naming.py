"""Physical names of everything extschema creates.

PostgreSQL gives each plugin its own schema (``ext_<pluginId>``), so table names stay as the
plugin wrote them. SQLite has no schemas, so tables are prefixed (``ext_<pluginId>__<table>``)
and index names, which SQLite keeps database-wide, are built from the prefixed table name.

PostgreSQL silently truncates identifiers past 63 bytes, which can make two names one. Names
a user chose must fit (validation refuses them otherwise); names extschema derives (indexes,
constraints, join tables) are shortened deterministically with a hash suffix, and
:mod:`extschema.conflicts` checks the results for collisions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from typing import Literal

from extschema import limits

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
PLUGIN_ID = re.compile(r"^[a-z][a-z0-9_]*$")
RESERVED_PREFIXES = ("pg_", "sqlite_", "extschema")
RESERVED_COLUMNS = frozenset({"id"})
PLUGIN_SCHEMA_PREFIX = "ext_"
REGISTRY_SCHEMA = "extschema"
#: Where data is copied before a destructive step (a schema on PostgreSQL, a prefix on SQLite).
BACKUP_SCHEMA = "extschema_backup"
#: The tag a previewed plan's backup names get in place of a migration id: ``plan`` and the webhook.
PLAN_PREVIEW_TAG = "planned"
DRY_RUN_PREVIEW_TAG = "dryrun"
CORE = "core"

Style = Literal["schema", "prefix"]


def backup_tag(migration_id: str) -> str:
    """The tag naming the backups a migration takes before destroying data (``…__m<migration id>``)."""
    return f"m{migration_id}"


def byte_length(name: str) -> int:
    return len(name.encode("utf-8"))


def fit(name: str, limit: int = limits.MAX_IDENTIFIER_BYTES) -> str:
    """Return *name*, or a shortened one ending in a hash of the full name when it is too long."""
    if byte_length(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    head = name.encode("utf-8")[: limit - len(digest) - 1].decode("utf-8", "ignore").rstrip("_")
    return f"{head}_{digest}"


@dataclasses.dataclass(frozen=True, order=True)
class PhysicalName:
    """A possibly schema-qualified database object name."""

    schema: str | None
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


def plugin_schema(plugin_id: str) -> str:
    return f"{PLUGIN_SCHEMA_PREFIX}{plugin_id}"


@dataclasses.dataclass(frozen=True)
class Namer:
    """Names for one database: ``schema`` style (PostgreSQL) or ``prefix`` style (SQLite)."""

    style: Style
    core_schema: str | None = None

    def table(self, plugin_id: str, table: str) -> PhysicalName:
        if self.style == "schema":
            return PhysicalName(plugin_schema(plugin_id), table)
        return PhysicalName(None, f"{plugin_schema(plugin_id)}__{table}")

    def core_table(self, table: str) -> PhysicalName:
        return PhysicalName(self.core_schema if self.style == "schema" else None, table)

    def enum_type(self, plugin_id: str, enum: str) -> PhysicalName:
        """The native type (PostgreSQL); SQLite enforces enums with CHECK constraints instead."""
        return PhysicalName(plugin_schema(plugin_id), enum)

    def derived(self, plugin_id: str, table: str, columns: Sequence[str], suffix: str) -> str:
        """An index or constraint name, unique where the database needs it to be.

        PostgreSQL scopes index names to the schema (one per plugin), SQLite to the database,
        so SQLite names start from the prefixed table name.
        """
        base = table if self.style == "schema" else self.table(plugin_id, table).name
        return fit("_".join([base, *columns, suffix]))

    def index(self, plugin_id: str, table: str, columns: Sequence[str], unique: bool, name: str | None) -> str:
        """An index's name: a named index keeps its name (prefixed on SQLite), others are derived."""
        if name:
            return fit(name if self.style == "schema" else f"{self.table(plugin_id, table).name}_{name}")
        return self.derived(plugin_id, table, columns, "key" if unique else "idx")

    def join_table_name(self, source: str, target_table: str) -> str:
        return fit(f"{source}_{target_table}")


def physical_table_length_ok(plugin_id: str, table: str) -> bool:
    """Whether a table's physical name fits in both naming styles without shortening."""
    return all(
        byte_length(n.name) <= limits.MAX_IDENTIFIER_BYTES
        for n in (Namer("schema").table(plugin_id, table), Namer("prefix").table(plugin_id, table))
    )
