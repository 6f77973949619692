"""Executes plans against a database, safely (see :mod:`extschema.engine.migrator`).

``connection`` reaches the database through its dialect, ``registry`` keeps the record of plugins
and migrations, ``migrator`` runs apply/rollback/delete along one path, ``catalog`` reads the live
database. The names below are the engine's public surface.
"""

from __future__ import annotations

from extschema.engine.connection import Database, redact
from extschema.engine.migrator import (
    ApplyResult,
    Engine,
    StalePlan,
    registered_by_another,
)
from extschema.engine.registry import (
    STATUSES_MIGRATION,
    STATUSES_SCHEMA,
    MigrationRecord,
    Registration,
    script,
    sql_checksum,
)

__all__ = [
    "STATUSES_MIGRATION",
    "STATUSES_SCHEMA",
    "ApplyResult",
    "Database",
    "Engine",
    "MigrationRecord",
    "Registration",
    "StalePlan",
    "redact",
    "registered_by_another",
    "script",
    "sql_checksum",
]
