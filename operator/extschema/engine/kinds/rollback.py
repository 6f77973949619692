"""``rollback``: undo a plugin's latest executed migration with its recorded rollback SQL.

What it changes is planned above the engine (:class:`RollbackPlan`, from :func:`source`'s reading
of the history): the engine runs the recorded statements only while the registration, the migration
to undo and its rollback SQL are still what was planned from, and counts again, under the lock, the
rows breaking a field it narrows.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from extschema.dialects import BackupRef, RenderedPlan
from extschema.engine import after_phase, checks
from extschema.engine.history import settled_lineage
from extschema.engine.registry import (
    MigrationKind,
    MigrationRecord,
    MigrationStatus,
    Registration,
    physical,
    statements_of,
)
from extschema.engine.runner import (
    ApplyResult,
    MigrationBase,
    Migrator,
    StalePlan,
    not_registered,
)
from extschema.model import ExtensionSchemaSpec
from extschema.naming import backup_tag
from extschema.planning import Plan, rawsql, shape
from extschema.problems import ProblemError


@dataclasses.dataclass(frozen=True)
class RollbackSource:
    """What the history says a rollback of a plugin undoes, read without the lock, for planning it."""

    #: The registration the rollback starts from.
    base: Registration
    #: The migration it undoes.
    migration_id: str
    #: The spec it goes back to; None when it undoes the first migration (the plugin goes).
    previous: ExtensionSchemaSpec | None
    #: The spec the undone migration applied.
    undone: ExtensionSchemaSpec
    #: The recorded rollback statements: exactly what runs.
    statements: tuple[str, ...]
    #: It undoes an ``adopt``: the plugin is only unregistered again, its objects stay (as retained).
    adoption: bool = False


@dataclasses.dataclass(frozen=True)
class RollbackPlan:
    """What undoing a plugin's latest executed migration would change, planned from the registry,
    for the approval gate (:func:`extschema.reconcile.rollback`) to classify, count and hash."""

    #: The registration the rollback starts from (its checksum is the hash's base).
    base: Registration
    #: The migration it undoes.
    migration_id: str
    #: The spec it goes back to; None when it undoes the first migration (the plugin goes).
    spec: ExtensionSchemaSpec | None
    #: The change: the ``rollbackSql`` of the raw steps the migration ran (reversed steps, first, as
    #: the recorded rollback runs them), then the registered spec to :attr:`spec` (without raw steps,
    #: the same plan, and hash, as applying that spec as a lower version), or the teardown of the
    #: registered spec.
    plan: Plan
    #: The plan the undone migration ran, planned again (it names the backups its rollback SQL reads,
    #: and what a rebuild of a table would lose); None when this planner refuses it (made by hand,
    #: or by another version): the rollback then runs as recorded.
    forward: Plan | None
    #: The recorded rollback statements: exactly what runs (the engine refuses others as stale).
    statements: tuple[str, ...] = ()
    #: The backups taken before the raw steps' ``rollbackSql`` runs (every table it names, whole).
    sql_backups: tuple[BackupRef, ...] = ()


def sql_backup_tag(migration_id: str) -> str:
    """How the backups taken before a rollback's ``rollbackSql`` are named: ``…__r<the migration undone>``
    (``r``, not the ``m`` of the migration's own backups, which the same rollback may also take of a table)."""
    return f"r{migration_id}"


def source(migrator: Migrator, plugin_id: str) -> RollbackSource | None:
    """What a rollback of *plugin_id* would undo, read without the lock (the kind checks it again under
    it); None when there is nothing to roll back (:class:`Rollback` says why). ES303 when no approval
    makes the rollback possible (dependents, or tables other plugins reference)."""
    registry = migrator.registry
    with registry.reading() as conn:
        base = None if conn is None else registry.registration(plugin_id, conn)
        if conn is None or base is None:
            return None
        built = settled_lineage(plugin_id, registry.history_rows(conn, plugin_id))
        if not built:
            return None
        previous = None
        if len(built) > 1:
            definition = registry.migration_row(conn, plugin_id, built[-2].migration_id).schema_definition
            previous = registry.guarded(conn, plugin_id, lambda: ExtensionSchemaSpec.model_validate(definition))
            registry.refuse_if_referenced(conn, plugin_id, previous)
        else:
            registry.refuse_if_dependents(conn, plugin_id)
        migration_id = built[-1].migration_id
        row = registry.migration_row(conn, plugin_id, migration_id)
        _, statements = registry.guarded(conn, plugin_id, lambda: statements_of(row))
        undone = registry.guarded(conn, plugin_id, lambda: ExtensionSchemaSpec.model_validate(row.schema_definition))
        adoption = built[-1].kind == MigrationKind.ADOPT
        return RollbackSource(base, migration_id, previous, undone, tuple(statements), adoption)


def planned(migrator: Migrator, source: RollbackSource, plan: Plan, forward: Plan | None) -> RollbackPlan:
    """*source*'s rollback as the gate reviews it and :class:`Rollback` runs it: *plan* (what it
    changes) and *forward* (the way there, planned again) were planned above the engine."""
    undone = () if source.adoption else tuple(rawsql.undone(source.previous, source.undone))
    steps = Plan(source.base.plugin_id, undone)
    backups = migrator.dialect.rollback_sql_backups(steps, sql_backup_tag(source.migration_id))
    return RollbackPlan(
        source.base, source.migration_id, source.previous, plan, forward, source.statements, tuple(backups)
    )


class Rollback(MigrationBase):
    finishes_pending = False  # the rollback drops those indexes (IF EXISTS): building them first is wasted

    def __init__(self, migrator: Migrator, plugin_id: str, expected: RollbackPlan | None = None) -> None:
        """*expected* is the reviewed plan; None only to have the refusals said when nothing was
        planned (not registered, nothing to roll back, an unsettled history): with something to
        roll back, a rollback without a plan is stale."""
        self.migrator, self.plugin_id, self.expected = migrator, plugin_id, expected
        self.target: MigrationRecord | None = None
        self.finish: MigrationRecord | None = None
        self.previous: Any = None
        self.previous_spec: ExtensionSchemaSpec | None = None
        #: The backups the rollback SQL takes of what it drops (recorded with the migration it undoes).
        self.takes: list[BackupRef] = []
        #: The tables the rollback SQL creates again from their whole-table backups.
        self.recreated: list[str] = []

    def check(self, conn: Connection, current: Registration | None) -> ApplyResult | None:
        if current is None:
            raise not_registered(self.plugin_id)
        if self.expected is not None and current.checksum != self.expected.base.checksum:
            raise StalePlan(self.plugin_id)
        self.current = current
        return None

    def render(self, conn: Connection, history: list[MigrationRecord], migration_id: str) -> RenderedPlan:
        registry, dialect = self.migrator.registry, self.migrator.dialect
        built = settled_lineage(self.plugin_id, history)
        if not built:
            raise ProblemError.one(
                "ES305", "plugin", f"plugin {self.plugin_id!r} has no executed migration to roll back", kind="refused"
            )
        self.target = built[-1]
        expected = self.expected
        if expected is None or self.target.migration_id != expected.migration_id:
            raise StalePlan(self.plugin_id)
        # Counted again under the lock, as an apply's (the gate read them before it).
        checks.refuse_violations(conn, dialect, expected.plan)
        if len(built) == 1:
            registry.refuse_if_dependents(conn, self.plugin_id)
        else:
            self.previous = registry.migration_row(conn, self.plugin_id, built[-2].migration_id)
            definition = self.previous.schema_definition
            self.previous_spec = registry.guarded(
                conn, self.plugin_id, lambda: ExtensionSchemaSpec.model_validate(definition)
            )
            registry.refuse_if_referenced(conn, self.plugin_id, self.previous_spec)
        self.finish = next(
            (
                r
                for r in history
                if r.kind == MigrationKind.FINISH and after_phase.applied_by(r.migration_id) == self.target.migration_id
            ),
            None,
        )
        row = registry.migration_row(conn, self.plugin_id, self.target.migration_id)
        statements, rollback = registry.guarded(conn, self.plugin_id, lambda: statements_of(row))
        if tuple(rollback) != expected.statements:
            raise StalePlan(self.plugin_id)  # not what the gate reviewed
        target_spec = registry.guarded(
            conn, self.plugin_id, lambda: ExtensionSchemaSpec.model_validate(row.schema_definition)
        )
        # The tables the raw steps' rollbackSql names are copied whole first: what it deletes or changes is unknown.
        adopted = self.target.kind == MigrationKind.ADOPT  # undone by unregistering: no raw step's rollbackSql
        steps = Plan(self.plugin_id, () if adopted else tuple(rawsql.undone(self.previous_spec, target_spec)))
        tag = sql_backup_tag(self.target.migration_id)
        self.takes = [*dialect.rollback_sql_backups(steps, tag), *self._backups(conn, expected.forward, rollback)]
        self._refuse_hand_made(conn, expected.forward)
        # A table the rollback creates again (undoing its drop) starts its ids above every id it had
        # handed out, as any table created again does: its restored rows' highest is not enough.
        floors = self.migrator.table_id_floors(conn, self.plugin_id, self.recreated)
        resumed = [s for t, floor in sorted(floors.items()) for s in dialect.resume_ids(self.plugin_id, t, floor)]
        runs = (*dialect.backup_rollback_sql(steps, tag), *rollback, *resumed)
        return RenderedPlan(runs, tuple(statements), bool(row.foreign_keys_off))

    def _refuse_hand_made(self, conn: Connection, forward: Plan | None) -> None:
        """ES301 when the recorded rollback SQL rebuilds a table (SQLite) that now holds a column or
        trigger the recorded spec does not know: the rebuild would drop it, like the forward path's."""
        found = self.migrator.dialect.hand_made_problems(conn, forward.reverse()) if forward is not None else []
        if found:
            raise ProblemError(found, kind="refused")

    def _backups(self, conn: Connection, forward: Plan | None, rollback: list[str]) -> list[BackupRef]:
        """The backups the rollback SQL fills; ES314 when one it reads (the undone migration's) is gone.

        The recorded *rollback* SQL was rendered from the plan the target migration ran; *forward*
        (that plan, planned again above the engine) names its backups the way the dialect does; only
        those the recorded SQL names count. A plan that cannot be made again (made by hand, or
        refused by this version's planner) names none: the rollback runs as recorded.
        """
        assert self.target is not None
        if forward is None:
            return []
        migration_id, sql = self.target.migration_id, " ".join(rollback)
        reads, takes = self.migrator.dialect.rollback_backups_of(forward, backup_tag(migration_id))
        inspector = sa.inspect(conn)
        named = [(r, physical(r.table)) for r in reads if physical(r.table)[1] in sql]
        gone = [r for r, (schema, name) in named if not inspector.has_table(name, schema=schema)]
        if gone:
            lost = ", ".join(f"{r.source_table}.{r.column}" if r.column else f"table {r.source_table}" for r in gone)
            raise ProblemError.one(
                "ES314",
                "plugin",
                f"cannot roll back migration {migration_id} of plugin {self.plugin_id!r}: its backup "
                f"{', '.join(r.table for r in gone)} no longer exists (pruned or dropped), so neither the rollback "
                f"nor `extschema restore {migration_id}` can bring back the data of {lost}; nothing was changed. "
                "To go back without that data, apply the earlier spec again under a new, higher version",
                kind="refused",
            )
        self.recreated = [r.source_table for r, _ in named if r.column is None]
        return [r for r in takes if physical(r.table)[1] in sql]

    def record(self, conn: Connection, migration_id: str, rendered: RenderedPlan, duration: int) -> ApplyResult:
        assert self.target is not None
        registry = self.migrator.registry
        registry.set_migration_status(conn, self.plugin_id, self.target.migration_id, MigrationStatus.ROLLED_BACK)
        if self.finish is not None:  # its indexes went with the rollback too
            registry.set_migration_status(conn, self.plugin_id, self.finish.migration_id, MigrationStatus.ROLLED_BACK)
        if self.previous_spec is None:
            registry.unregister(conn, self.plugin_id)
        else:
            # The tables of the spec gone back to: those the rollback removed are not drift.
            tables = shape(self.previous_spec).physical_tables(self.migrator.dialect.namer)
            assert self.current is not None
            registry.register(conn, self.current.owner, self.previous_spec, tables, exists=True)
        # Listed with the migration they undid: their names carry its tag, like its own backups.
        registry.record_backups(conn, self.plugin_id, self.target.migration_id, self.takes, counters=self.id_counters)
        description = [f"rolled back migration {self.target.migration_id}"]
        if self.target.kind == MigrationKind.ADOPT:
            description.append("unregistered again: its objects stay as `delete --retain` left them")
        return ApplyResult(self.plugin_id, True, self.target.migration_id, description, duration)
