"""``delete`` / ``unregister``: remove a plugin with the teardown plan it is given (its objects backed
up, then dropped), or, retained, only forget it. Refused while another plugin depends on it."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy.engine import Connection

from extschema import planning
from extschema.dialects import Dialect, RenderedPlan
from extschema.engine import catalog
from extschema.engine.registry import MigrationKind, MigrationRecord, Registration, now
from extschema.engine.runner import ApplyResult, MigrationBase, Migrator, StalePlan, not_registered
from extschema.naming import backup_tag
from extschema.planning import Plan


def without_missing_tables(plan: Plan, existing: Collection[str], dialect: Dialect) -> tuple[Plan, list[str]]:
    """*plan* without the steps on tables that no longer exist (dropped by hand), and those tables.

    A plugin must stay removable when someone dropped one of its tables: what exists is backed up
    and dropped, what is gone is reported.
    """

    def table_of(op: planning.Op) -> str | None:
        match op:
            case planning.DropTable():
                return op.table.name
            case planning.DropIndex() | planning.CreateIndex():
                return op.table
            case planning.DropColumn() | planning.AddColumn():
                return op.before.name
        return None

    kept: list[planning.Op] = []
    missing: list[str] = []
    for op in plan.ops:
        table = table_of(op)
        physical = str(dialect.namer.table(plan.plugin_id, table)) if table is not None else None
        if physical is not None and physical not in existing:
            if isinstance(op, planning.DropTable):
                missing.append(physical)
            continue
        kept.append(op)
    return Plan(plan.plugin_id, tuple(kept)), missing


class Delete(MigrationBase):
    def __init__(self, migrator: Migrator, planned_from: Registration, plan: Plan, keep: bool) -> None:
        """*plan* tears down *planned_from*'s spec (empty when *keep*: the tables stay)."""
        self.migrator, self.planned_from, self.plan, self.keep = migrator, planned_from, plan, keep
        self.plugin_id = planned_from.plugin_id
        self.missing: list[str] = []

    @property
    def kind(self) -> MigrationKind:  # type: ignore[override]
        return MigrationKind.UNREGISTER if self.keep else MigrationKind.DELETE

    @property
    def finishes_pending(self) -> bool:  # type: ignore[override]
        return self.keep  # dropped tables take their indexes along; retained ones get them built

    def check(self, conn: Connection, current: Registration | None) -> ApplyResult | None:
        if current is None:
            raise not_registered(self.plugin_id)
        if current.checksum != self.planned_from.checksum:
            raise StalePlan(self.plugin_id)
        self.current = current
        self.migrator.registry.refuse_if_dependents(conn, self.plugin_id)
        return None

    def render(self, conn: Connection, history: list[MigrationRecord], migration_id: str) -> RenderedPlan:
        dialect = self.migrator.dialect
        existing = set(catalog.plugin_tables(conn, dialect, self.plugin_id))
        plan, self.missing = without_missing_tables(self.plan, existing, dialect)
        return dialect.render_plan(plan, backup_tag=backup_tag(migration_id))

    def record(self, conn: Connection, migration_id: str, rendered: RenderedPlan, duration: int) -> ApplyResult:
        registry = self.migrator.registry
        assert self.current is not None
        description = ["unregistered (tables retained)"] if self.keep else ["dropped all objects (data backed up)"]
        if self.missing:
            description.append(f"already missing (dropped outside extschema): {', '.join(self.missing)}")
        registry.record(conn, self.executed_row(migration_id, description, rendered, now(), duration))
        registry.unregister(conn, self.plugin_id)
        refs = self.migrator.dialect.backups_of(self.plan, backup_tag(migration_id))
        registry.record_backups(conn, self.plugin_id, migration_id, refs, skip=self.missing, counters=self.id_counters)
        return ApplyResult(self.plugin_id, True, migration_id, description, duration)
