"""The engine's facade: one database, its registry, and the migrations of every plugin in it.

The reads forward to :mod:`~extschema.engine.registry` and :mod:`~extschema.engine.catalog`; each
migration is a kind (:mod:`extschema.engine.kinds`) run by the one path,
:meth:`extschema.engine.runner.Migrator.run` (the lock, the transaction, the retries, the after
phase: see :mod:`extschema.engine.runner`). The engine runs plans it is given — apply, rollback,
delete, drift repair and restore are planned above it (:mod:`extschema.reconcile`) — and checks
under the plugin's lock that the registry is still what they were planned from (else
:class:`StalePlan`: plan again).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from sqlalchemy.engine import Connection

from extschema import limits
from extschema.dialects import Dialect
from extschema.engine import catalog
from extschema.engine.backups import RestoreSource
from extschema.engine.connection import Database
from extschema.engine.drift import Difference, RepairPlan
from extschema.engine.kinds import adopt as adopt_kind
from extschema.engine.kinds import apply as apply_kind
from extschema.engine.kinds import rollback as rollback_kind
from extschema.engine.kinds.adopt import Retained
from extschema.engine.kinds.delete import Delete
from extschema.engine.kinds.repair import Repair
from extschema.engine.kinds.restore import Restore
from extschema.engine.kinds.rollback import RollbackPlan, RollbackSource
from extschema.engine.registry import MigrationRecord, Registration, Registry, RepairChange
from extschema.engine.runner import (
    ApplyResult,
    Migrator,
    Preview,
    StalePlan,
    not_registered,
    registered_by_another,
)
from extschema.model import ExtensionSchemaSpec, FieldType
from extschema.planning import Plan, Resolved

__all__ = [
    "ApplyResult",
    "Engine",
    "RollbackPlan",
    "RollbackSource",
    "StalePlan",
    "not_registered",
    "registered_by_another",
]


class Engine:
    """One database: its registry, and the migrations of every plugin in it."""

    def __init__(
        self,
        url: str,
        *,
        lock_timeout_ms: int = limits.DEFAULT_LOCK_TIMEOUT_MS,
        statement_timeout_ms: int = limits.DEFAULT_STATEMENT_TIMEOUT_MS,
        core_schema: str = "public",
        allow_raw_sql: bool = False,
        lock_timeout_setting: str = "the lock timeout",
    ) -> None:
        self.database = Database(url, core_schema)
        #: Whether plans may run raw SQL steps (spec.migrations); reconcile refuses them otherwise (ES313).
        self.allow_raw_sql = allow_raw_sql
        self.registry = Registry(self.database)
        self.url = url
        self.dialect: Dialect = self.database.dialect
        self.sa_engine = self.database.sa_engine
        self.lock_timeout_ms = lock_timeout_ms
        self.statement_timeout_ms = statement_timeout_ms
        #: Runs every migration (:meth:`Migrator.run`) and holds the plugin's lock (:meth:`Migrator.lock`).
        self.migrator = Migrator(
            self.database, self.registry, lock_timeout_ms, statement_timeout_ms, lock_timeout_setting
        )

    @property
    def backend(self) -> str:
        return self.dialect.name

    def close(self) -> None:
        self.database.close()

    def ping(self) -> str:
        """Connect and return the server version (raises ES401 when unreachable)."""
        return self.database.ping()

    # --- reads (never write: a database without a registry has no plugins) -------------------

    def ensure_registry(self) -> None:
        self.registry.ensure()

    def registrations(self) -> list[Registration]:
        return self.registry.registrations()

    def registration(self, plugin_id: str, conn: Connection | None = None) -> Registration | None:
        return self.registry.registration(plugin_id, conn)

    def history(self, plugin_id: str | None = None) -> list[MigrationRecord]:
        return self.registry.history(plugin_id)

    def core_catalog(
        self, columns_of: Collection[str] | None = None
    ) -> dict[tuple[str, str], dict[str, FieldType | None]]:
        return catalog.core_catalog(self.database, columns_of)

    def physical_tables(self, plugin_id: str) -> list[str]:
        return catalog.physical_tables(self.database, plugin_id)

    def physical_objects(self, plugin_id: str) -> list[str]:
        return catalog.plugin_objects(self.database, plugin_id)

    # --- migrations: each runs a plan made above the engine ---------------------------------------

    def apply(
        self,
        owner: str,
        spec: ExtensionSchemaSpec,
        plan: Plan,
        base_checksum: str | None,
        tables: list[str],
    ) -> ApplyResult:
        """Run *plan*, which takes *spec*'s plugin from *base_checksum* to *spec*, as one migration.

        A concurrent applier may have done the work (then nothing runs). Raises :class:`StalePlan`
        when the registry no longer matches *base_checksum*, :class:`ProblemError` for everything a
        user must see.
        """
        return apply_kind.apply(
            self.migrator, apply_kind.Apply(self.migrator, owner, spec, plan, base_checksum, tables)
        )

    def rollback_source(self, plugin_id: str) -> RollbackSource | None:
        """What a rollback of *plugin_id* would undo, for planning it (:func:`extschema.planning.rollback`);
        read without the lock, None when there is nothing to roll back (:meth:`rollback` says why)."""
        return rollback_kind.source(self.migrator, plugin_id)

    def rollback_plan(self, source: RollbackSource, plan: Plan, forward: Plan | None) -> RollbackPlan:
        """*source*'s rollback, planned above the engine (*plan*: what it changes; *forward*: the undone
        migration's plan made again, None when this planner refuses it), as the gate reviews it."""
        return rollback_kind.planned(self.migrator, source, plan, forward)

    def rollback(self, plugin_id: str, expected: RollbackPlan | None) -> ApplyResult:
        """Undo the plugin's latest executed migration with its recorded rollback SQL.

        Raises :class:`StalePlan` when the registration or the migration to undo changed since
        *expected* (what the approval gate reviewed) was planned; with *expected* None, says why there
        is nothing to roll back (or raises :class:`StalePlan` when there is something after all).
        """
        if self.registration(plugin_id) is None:  # refused without creating a registry
            raise not_registered(plugin_id)
        step = rollback_kind.Rollback(self.migrator, plugin_id, expected)
        result = self.migrator.run(plugin_id, step)
        ran = step.rendered.all_statements if step.rendered is not None and result.changed else ()
        return dataclasses.replace(result, statements=ran)

    def delete(self, planned_from: Registration, plan: Plan, keep: bool) -> ApplyResult:
        """Remove a plugin: run *plan*, the teardown of *planned_from*'s spec (its data backed up
        first), or with *keep* (Retain; *plan* empty) only unregister it. Refused while another plugin
        depends on it; :class:`StalePlan` when the registration changed after planning.
        """
        step = Delete(self.migrator, planned_from, plan, keep)
        return self.migrator.run(planned_from.plugin_id, step, self.dialect.needs_foreign_keys_off(plan))

    def repair_drift(self, planned: RepairPlan) -> ApplyResult:
        """Re-create what *planned* found missing, in one migration under the lock (nothing when the
        plugin moved on since; :class:`StalePlan` when what is missing changed)."""
        return self.migrator.run(planned.base.plugin_id, Repair(self.migrator, planned))

    def restore(self, source: RestoreSource) -> ApplyResult:
        """Copy the backups of *source*'s migration back into the plugin's current tables."""
        step = Restore(self.migrator, source.plugin_id, source.migration_id)
        return self.migrator.run(source.plugin_id, step, foreign_keys_off=False)

    def repair(self, plugin_id: str, mode: str, dry_run: bool = False) -> list[RepairChange]:
        """Make the plugin's recorded migrations verify again after a deliberate edit (*mode*: see
        :meth:`Registry.repair`); *dry_run* changes nothing and takes no lock."""
        if dry_run:
            with self.registry.reading() as conn:
                return [] if conn is None else self.registry.repair(conn, plugin_id, mode, dry_run=True)
        with self.registry.reading() as conn:
            if conn is None:  # no registry: nothing was ever recorded, nothing to repair
                return []
        with self.database.transaction() as conn:
            self.migrator.lock(conn, plugin_id)
            return self.registry.repair(conn, plugin_id, mode)

    # --- adopting what delete --retain kept (:mod:`extschema.engine.kinds.adopt`) -----------------

    def retained(self, plugin_id: str) -> Retained | None:
        """What ``delete --retain`` of the (unregistered) plugin left, by its history; None when nothing."""
        with self.registry.reading() as conn:
            return None if conn is None else adopt_kind.retained(self.registry, conn, plugin_id)

    def adoption_differences(self, expected: Resolved) -> list[Difference]:
        """How the plugin's objects differ from *expected* (its retained spec, resolved); reads only."""
        with self.database.reading() as conn:
            return adopt_kind.differences(conn, self.migrator, expected)

    def adopt(self, owner: str, source: Retained, expected: Resolved, tables: list[str]) -> ApplyResult:
        """Register *source*'s spec again for *owner*, as an ``adopt`` migration that runs no SQL, once its
        objects are checked under the lock to be exactly *expected* (else ES209). :class:`StalePlan` when
        the plugin was registered, or its history moved, since *source* was read."""
        step = adopt_kind.Adopt(self.migrator, owner, source, expected, tables)
        return self.migrator.run(source.plugin_id, step)

    # --- dry runs: what a migration would do, rendered and counted, nothing run or recorded ---------

    def preview_rollback(self, plugin_id: str, expected: RollbackPlan | None) -> Preview:
        """:meth:`rollback` without running it."""
        return self.migrator.preview(plugin_id, rollback_kind.Rollback(self.migrator, plugin_id, expected))

    def preview_delete(self, planned_from: Registration, plan: Plan, keep: bool) -> Preview:
        """:meth:`delete` without running it."""
        return self.migrator.preview(planned_from.plugin_id, Delete(self.migrator, planned_from, plan, keep))

    def preview_repair_drift(self, planned: RepairPlan) -> Preview:
        """:meth:`repair_drift` without running it."""
        return self.migrator.preview(planned.base.plugin_id, Repair(self.migrator, planned))

    def preview_restore(self, source: RestoreSource) -> Preview:
        """:meth:`restore` without running it (the plugin must be registered)."""
        step = Restore(self.migrator, source.plugin_id, source.migration_id)
        return self.migrator.preview(source.plugin_id, step)
