"""``repair``: re-create what drift found missing (:class:`extschema.engine.drift.RepairPlan`), rendered
and finished as an apply is; never drops or alters anything (see :mod:`extschema.engine.drift`)."""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from extschema import planning
from extschema.dialects import RenderedPlan
from extschema.engine import catalog
from extschema.engine.drift import RepairPlan, compare
from extschema.engine.registry import Definition, MigrationKind, MigrationRecord, Registration, now
from extschema.engine.runner import ApplyResult, MigrationBase, Migrator, StalePlan, not_registered
from extschema.model import ExtensionSchemaSpec


class Repair(MigrationBase):
    kind = MigrationKind.REPAIR

    def __init__(self, migrator: Migrator, planned: RepairPlan) -> None:
        self.migrator, self.planned, self.started = migrator, planned, now()
        self.plugin_id = planned.base.plugin_id
        self.plan = planned.plan

    def check(self, conn: Connection, current: Registration | None) -> ApplyResult | None:
        if current is None:
            raise not_registered(self.plugin_id)
        if current.checksum != self.planned.base.checksum:
            # A migration committed since the plan was read: repairing against it would re-create what
            # that migration dropped or renamed. Nothing now; the next check compares with the new spec.
            return ApplyResult(self.plugin_id, False, None, [])
        self.current = current
        # Compared again under the lock: only what is missing now is re-created.
        dialect = self.migrator.dialect
        live = catalog.live_plugin(sa.inspect(conn), dialect, self.plugin_id)
        _, ops = compare(live, dialect, self.planned.expected)
        if not ops:
            return ApplyResult(self.plugin_id, False, None, [])
        if tuple(ops) != self.planned.plan.ops:
            raise StalePlan(self.plugin_id)  # something else went missing (or came back) since: plan again
        return None

    def render(self, conn: Connection, history: list[MigrationRecord], migration_id: str) -> RenderedPlan:
        # As an apply renders: new indexes of tables with rows are built after COMMIT, by the same step.
        return self.migrator.render_plan(conn, self.plan, migration_id)

    def preview_lines(self, migration_id: str) -> list[str]:
        return [
            op.describe() if isinstance(op, planning.EnforceIntRange) else f"re-creates: {op.describe()}"
            for op in self.plan.ops
        ]

    def recorded_as(self) -> tuple[str, ExtensionSchemaSpec, Definition | None, datetime.datetime]:
        assert self.current is not None
        return self.current.owner, self.current.spec, None, self.started

    def record(self, conn: Connection, migration_id: str, rendered: RenderedPlan, duration: int) -> ApplyResult:
        assert self.current is not None
        description = [
            op.describe() if isinstance(op, planning.EnforceIntRange) else f"re-created: {op.describe()}"
            for op in self.plan.ops
        ]
        self.migrator.registry.record(
            conn, self.executed_row(migration_id, description, rendered, self.started, duration)
        )
        return ApplyResult(self.plugin_id, True, migration_id, description, duration)
