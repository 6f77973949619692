"""Executes plans against a database, safely (see :mod:`extschema.engine.runner`).

``connection`` reaches the database through its dialect, ``registry`` keeps the record of plugins,
migrations and backups, ``runner`` runs every kind of migration (``kinds``) along one path, with
the ``after_phase`` for concurrent builds; ``migrator`` is the facade (:class:`Engine`) the layers
above use; ``catalog`` reads the live database, ``backups`` lists and prunes backups and says what a
restore takes, ``drift`` compares the live database with the registered specs and says what a
repair re-creates. The engine never plans: every plan it runs is made above it. The names below
are the engine's public surface.
"""

from __future__ import annotations

from extschema.engine import after_phase, backups, drift, progress
from extschema.engine.after_phase import AfterPhase
from extschema.engine.backups import RestoreSource
from extschema.engine.connection import Database, redact
from extschema.engine.drift import Difference, DriftReport, RepairPlan
from extschema.engine.kinds.adopt import RETAINED, Retained
from extschema.engine.kinds.rollback import RollbackPlan, RollbackSource
from extschema.engine.migrator import Engine
from extschema.engine.registry import (
    STATUSES_MIGRATION,
    STATUSES_SCHEMA,
    BackupRecord,
    MigrationKind,
    MigrationRecord,
    MigrationStatus,
    Registration,
    RepairChange,
    script,
    sql_checksum,
)
from extschema.engine.runner import (
    ApplyResult,
    Migration,
    Migrator,
    Preview,
    StalePlan,
    StepFailed,
    not_registered,
    registered_by_another,
)

__all__ = [
    "RETAINED",
    "STATUSES_MIGRATION",
    "STATUSES_SCHEMA",
    "AfterPhase",
    "ApplyResult",
    "BackupRecord",
    "Database",
    "Difference",
    "DriftReport",
    "Engine",
    "Migration",
    "MigrationKind",
    "MigrationRecord",
    "MigrationStatus",
    "Migrator",
    "Preview",
    "Registration",
    "RepairChange",
    "RepairPlan",
    "RestoreSource",
    "Retained",
    "RollbackPlan",
    "RollbackSource",
    "StalePlan",
    "StepFailed",
    "after_phase",
    "backups",
    "drift",
    "not_registered",
    "progress",
    "redact",
    "registered_by_another",
    "script",
    "sql_checksum",
]
