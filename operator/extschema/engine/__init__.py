"""Executes plans against a database, safely (see :mod:`extschema.engine.migrator`).

``connection`` reaches the database through its dialect, ``registry`` keeps the record of plugins,
migrations and backups, ``migrator`` runs apply/rollback/delete along one path, ``catalog`` reads
the live database, ``backups`` lists, prunes and restores backups, ``drift`` compares the live
database with the registered specs and repairs what is missing. The names below are the engine's
public surface.
"""

from __future__ import annotations

from extschema.engine import backups, drift
from extschema.engine.connection import Database, redact
from extschema.engine.drift import Difference, DriftReport
from extschema.engine.migrator import (
    ApplyResult,
    Engine,
    RollbackPlan,
    StalePlan,
    registered_by_another,
)
from extschema.engine.registry import (
    STATUSES_MIGRATION,
    STATUSES_SCHEMA,
    BackupRecord,
    MigrationKind,
    MigrationRecord,
    MigrationStatus,
    Registration,
    script,
    sql_checksum,
)

__all__ = [
    "STATUSES_MIGRATION",
    "STATUSES_SCHEMA",
    "ApplyResult",
    "BackupRecord",
    "Database",
    "Difference",
    "DriftReport",
    "Engine",
    "MigrationKind",
    "MigrationRecord",
    "MigrationStatus",
    "Registration",
    "RollbackPlan",
    "StalePlan",
    "backups",
    "drift",
    "redact",
    "registered_by_another",
    "script",
    "sql_checksum",
]
