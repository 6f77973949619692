"""``delete`` / ``unregister``: remove a plugin with the teardown plan it is given (its objects backed
up, then dropped), or, retained, only forget it. Refused while another plugin depends on it."""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa
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
        #: The plan without the tables already gone, and the rows of each table it drops (logical
        #: name), counted under the lock just before they go.
        self.executed: Plan = plan
        self.rows: dict[str, int] = {}

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
        self.executed = plan
        for op in plan.ops:
            if isinstance(op, planning.DropTable):
                table = dialect.qualified(dialect.namer.table(self.plugin_id, op.table.name))
                self.rows[op.table.name] = int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
        return dialect.render_plan(plan, backup_tag=backup_tag(migration_id))

    def _lines(self, migration_id: str, done: bool) -> list[str]:
        """Each table dropped with its rows, and where they are backed up (*done*: in the past tense)."""
        drop, back = ("dropped", "backed up") if done else ("drops", "backs up")
        refs = self.migrator.dialect.backups_of(self.executed, backup_tag(migration_id))
        tables = [f"{drop} table {name} ({count} row(s))" for name, count in self.rows.items()]
        saved = [
            f"{back} {f'{r.source_table}.{r.column}' if r.column else f'table {r.source_table}'} to {r.table}"
            for r in refs
        ]
        gone = [f"already missing (dropped outside extschema): {', '.join(self.missing)}"] if self.missing else []
        return [*tables, *saved, *gone]

    def preview_lines(self, migration_id: str) -> list[str]:
        if self.keep:
            return [f"unregisters plugin {self.plugin_id!r}; its tables, rows and indexes stay"]
        return self._lines(migration_id, done=False)

    def record(self, conn: Connection, migration_id: str, rendered: RenderedPlan, duration: int) -> ApplyResult:
        registry = self.migrator.registry
        assert self.current is not None
        description = ["unregistered (tables retained)"]
        if not self.keep:
            description = ["dropped all objects (data backed up)", *self._lines(migration_id, done=True)]
        registry.record(conn, self.executed_row(migration_id, description, rendered, now(), duration))
        registry.unregister(conn, self.plugin_id)
        refs = self.migrator.dialect.backups_of(self.plan, backup_tag(migration_id))
        registry.record_backups(conn, self.plugin_id, migration_id, refs, skip=self.missing, counters=self.id_counters)
        return ApplyResult(self.plugin_id, True, migration_id, description, duration)
