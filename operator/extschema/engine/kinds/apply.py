"""``apply``: run a plan that takes a plugin from a base registration to a spec; a failure is
recorded, in its own transaction, with the database's message."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime

from sqlalchemy.engine import Connection

from extschema.dialects import RenderedPlan
from extschema.engine.registry import (
    Definition,
    MigrationKind,
    MigrationRecord,
    MigrationRow,
    MigrationStatus,
    Registration,
    now,
)
from extschema.engine.runner import ApplyResult, MigrationBase, Migrator, StalePlan, registered_by_another
from extschema.model import ExtensionSchemaSpec
from extschema.naming import backup_tag
from extschema.planning import Plan
from extschema.problems import ProblemError


class Apply(MigrationBase):
    def __init__(
        self,
        migrator: Migrator,
        owner: str,
        spec: ExtensionSchemaSpec,
        plan: Plan,
        base_checksum: str | None,
        tables: list[str],
    ) -> None:
        self.migrator, self.owner, self.spec, self.plan = migrator, owner, spec, plan
        self.base_checksum, self.tables = base_checksum, tables
        self.started: datetime.datetime = now()
        self.rendered: RenderedPlan | None = None
        self.current: Registration | None = None
        self.definition: Definition | None = None

    def check(self, conn: Connection, current: Registration | None) -> ApplyResult | None:
        plugin_id = self.spec.plugin_id
        if current is not None and current.owner != self.owner:
            raise registered_by_another(plugin_id, current.owner)
        if current is not None and current.holds(self.spec):
            return ApplyResult(plugin_id, False, None, [], registration=current)
        if (current.checksum if current else None) != self.base_checksum:
            raise StalePlan(plugin_id)
        self.current = current
        return None

    def before(self) -> list[str]:
        return self.migrator.dialect.before_phase(self.plan)

    def render(self, conn: Connection, history: list[MigrationRecord], migration_id: str) -> RenderedPlan:
        self.rendered = self.migrator.render_plan(conn, self.plan, migration_id)
        return self.rendered

    def recorded_as(self) -> tuple[str, ExtensionSchemaSpec, Definition | None, datetime.datetime]:
        return self.owner, self.spec, self.definition, self.started

    def record(self, conn: Connection, migration_id: str, rendered: RenderedPlan, duration: int) -> ApplyResult:
        registry = self.migrator.registry
        description = self.plan.describe()
        plugin_id = self.spec.plugin_id
        # The before phase is part of what this migration ran; its rollback SQL undoes it too.
        ran = dataclasses.replace(rendered, statements=(*rendered.before, *rendered.statements), before=(), after=())
        definition = self.definition = Definition.of(self.spec)  # serialised once for every row (and the finish)
        row = MigrationRow(
            plugin_id=plugin_id,
            migration_id=migration_id,
            kind=MigrationKind.APPLY,
            owner=self.owner,
            spec=self.spec,
            description=description,
            rendered=ran,
            status=MigrationStatus.EXECUTED,
            started=self.started,
            duration_ms=duration,
            definition=definition,
        )
        registry.record(conn, row)
        registry.register(conn, self.owner, self.spec, self.tables, self.current is not None, definition)
        refs = self.migrator.dialect.backups_of(self.plan, backup_tag(migration_id))
        registry.record_backups(conn, self.spec.plugin_id, migration_id, refs, counters=self.id_counters)
        registered = registry.registration(plugin_id, conn)
        return ApplyResult(plugin_id, True, migration_id, description, duration, rendered.warnings, registered)


def apply(migrator: Migrator, step: Apply) -> ApplyResult:
    """Run *step*; when it failed in the database after rendering (and before its COMMIT), record
    the failure in a transaction of its own, so the rolled-back migration leaves its trace."""
    try:
        return migrator.run(step.spec.plugin_id, step, migrator.dialect.needs_foreign_keys_off(step.plan))
    except ProblemError as problem:
        if step.rendered is not None and not step.committed and problem.kind in ("database", "retryable"):
            _record_failure(migrator, step, problem)
        raise


def _record_failure(migrator: Migrator, step: Apply, problem: ProblemError) -> None:
    assert step.rendered is not None
    message = problem.problems[0].message
    plugin_id = step.spec.plugin_id
    registry = migrator.registry
    with contextlib.suppress(ProblemError), migrator.database.transaction() as conn:
        migrator.lock(conn, plugin_id)
        failed_id = registry.next_migration_id(conn, plugin_id)
        row = MigrationRow(
            plugin_id=plugin_id,
            migration_id=failed_id,
            kind=MigrationKind.APPLY,
            owner=step.owner,
            spec=step.spec,
            description=step.plan.describe(),
            rendered=step.rendered,
            status=MigrationStatus.FAILED,
            started=step.started,
            error=message,
        )
        registry.record(conn, row)
        registry.mark_failed(conn, plugin_id, message)
