"""``adopt``: register again, unchanged, the objects ``delete --retain`` kept.

A retained plugin leaves its tables and its history: the history's last ending migration is the
``unregister`` that kept them, recorded with the spec they were built from (:func:`retained`). That
record is the evidence: objects without it (a table made by hand with the plugin's name, objects
left after a ``delete`` that dropped them) are never taken over (ES202 above the engine).

:class:`Adopt` compares, under the plugin's lock, the objects with the retained spec the way drift
does (:func:`extschema.engine.drift.compare`: tables, columns, types, nullability, indexes, unique
constraints, enum types, SQLite's Int range rule) and, when they match exactly, records an ``adopt``
migration that runs no SQL and registers the retained spec again. Any difference refuses (ES209),
naming each one. Its rollback unregisters again and leaves the objects, as Retain did.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from extschema.dialects import Dialect, RenderedPlan
from extschema.engine import catalog, drift
from extschema.engine.registry import (
    ENDING_KINDS,
    MigrationKind,
    MigrationRecord,
    MigrationRow,
    MigrationStatus,
    Registration,
    Registry,
    now,
)
from extschema.engine.runner import ApplyResult, MigrationBase, Migrator, StalePlan
from extschema.model import ExtensionSchemaSpec
from extschema.naming import PhysicalName
from extschema.planning import Resolved, TableDef
from extschema.problems import ProblemError

#: How the spec's onDelete reads back from the database's catalog.
_ON_DELETE = {"Restrict": "RESTRICT", "Cascade": "CASCADE", "SetNull": "SET NULL"}
#: The status of the registration :meth:`Retained.registration` makes up (never stored): plans start from it.
RETAINED = "retained"


@dataclasses.dataclass(frozen=True)
class Retained:
    """What ``delete --retain`` (or ``deletionPolicy: Retain``) left of a plugin: the ``unregister``
    migration that kept its objects, and the spec they were built from."""

    plugin_id: str
    #: The ``unregister`` migration.
    migration_id: str
    #: Who had the plugin registered then.
    owner: str
    spec: ExtensionSchemaSpec
    checksum: str
    retained_at: datetime.datetime

    def registration(self, owner: str) -> Registration:
        """The retained spec as a registration of *owner* with status :data:`RETAINED`: what an apply
        plans from (the plan, and its hash, are those of an upgrade from the retained version)."""
        return Registration(
            plugin_id=self.plugin_id,
            owner=owner,
            version=self.spec.version,
            spec=self.spec,
            checksum=self.checksum,
            status=RETAINED,
            error_message=None,
            tables=[],
            registered_at=self.retained_at,
            activated_at=None,
            updated_at=self.retained_at,
        )


def retained(registry: Registry, conn: Connection, plugin_id: str) -> Retained | None:
    """What the plugin's history says was retained, or None: its last executed ending migration is an
    ``unregister`` (not a ``delete``), and nothing was built since (an apply after it, even rolled
    back, created and dropped objects of its own: the retained ones are no longer known to be there)."""
    records = registry.history_rows(conn, plugin_id)
    return _retained(registry, conn, plugin_id, records)


def _retained(
    registry: Registry, conn: Connection, plugin_id: str, records: Sequence[MigrationRecord]
) -> Retained | None:
    ended = [i for i, r in enumerate(records) if r.kind in ENDING_KINDS and r.status == MigrationStatus.EXECUTED]
    if not ended or records[ended[-1]].kind != MigrationKind.UNREGISTER:
        return None
    last = records[ended[-1]]
    built = (MigrationStatus.EXECUTED, MigrationStatus.ROLLED_BACK)
    if any(r.kind == MigrationKind.APPLY and r.status in built for r in records[ended[-1] + 1 :]):
        return None
    row = registry.migration_row(conn, plugin_id, last.migration_id)
    if row.schema_definition is None or last.checksum_schema is None:
        return None
    spec = registry.guarded(conn, plugin_id, lambda: ExtensionSchemaSpec.model_validate(row.schema_definition))
    stamp = last.execution_end or last.execution_start or now()
    return Retained(plugin_id, last.migration_id, row.owner, spec, last.checksum_schema, stamp)


def differences(conn: Connection, migrator: Migrator, expected: Resolved) -> list[drift.Difference]:
    """How the plugin's objects differ from *expected* (the retained spec, resolved): what drift says,
    and what only an adoption asks about — defaults, foreign keys and CHECK constraints."""
    inspector = sa.inspect(conn)
    dialect = migrator.dialect
    live = catalog.live_plugin(inspector, dialect, expected.plugin_id)
    found, _ = drift.compare(live, dialect, expected)
    for table in expected.tables:
        physical = dialect.namer.table(expected.plugin_id, table.name)
        here = live.tables.get(str(physical))
        if here is not None:
            found.extend(_constraints(inspector, dialect, expected.plugin_id, table, physical, here))
    return found


def _constraints(
    inspector: sa.Inspector,
    dialect: Dialect,
    plugin_id: str,
    table: TableDef,
    physical: PhysicalName,
    live: catalog.LiveTable,
) -> list[drift.Difference]:
    """Defaults, foreign keys and CHECK constraints of one table, compared with what the spec creates."""
    found: list[drift.Difference] = []
    defaults = {c["name"]: c.get("default") for c in inspector.get_columns(physical.name, schema=physical.schema)}
    for column in table.columns:
        if column.name not in defaults:
            continue  # drift names the missing column
        want, have = dialect.default_sql(column), defaults[column.name]
        if _default(want) != _default(None if have is None else str(have)):
            found.append(
                drift.Difference(
                    "changed",
                    f"column {table.name}.{column.name}",
                    f"default is {have if have is not None else 'none'}; the spec has {want or 'none'}",
                )
            )
    found.extend(_foreign_keys(inspector, dialect, plugin_id, table, physical))
    found.extend(_checks(inspector, dialect, plugin_id, table, physical, live))
    return found


def _default(text: str | None) -> str | None:
    """A default as compared: without casts (``'open'::ext_desk.state``), outer parentheses and quotes."""
    if text is None:
        return None
    value = text.strip()
    while value.startswith("(") and value.endswith(")"):
        value = value[1:-1].strip()
    literal = re.match(r"^('(?:[^']|'')*')(::.*)?$", value, re.DOTALL)
    value = literal.group(1)[1:-1] if literal is not None else re.sub(r"(::[\w .\"\[\]]+)+$", "", value)
    value = value.lower()
    return "current_timestamp" if value in ("now()", "current_timestamp") else value


def _foreign_keys(
    inspector: sa.Inspector, dialect: Dialect, plugin_id: str, table: TableDef, physical: PhysicalName
) -> list[drift.Difference]:
    wanted = {
        c.name: (dialect.physical_target(plugin_id, c.foreign_key).name, c.foreign_key.column, c.foreign_key.on_delete)
        for c in table.columns
        if c.foreign_key is not None
    }
    have: dict[str, tuple[str, str, str]] = {}
    for fk in inspector.get_foreign_keys(physical.name, schema=physical.schema):
        columns, referred = fk["constrained_columns"], fk["referred_columns"]
        if len(columns) == 1 and len(referred) == 1:
            on_delete = str((fk.get("options") or {}).get("ondelete") or "NO ACTION").upper()
            have[columns[0]] = (fk["referred_table"], referred[0], on_delete)
        else:
            have[", ".join(columns)] = (fk["referred_table"], ", ".join(referred), "")
    found: list[drift.Difference] = []
    for column, (target, key, on_delete) in wanted.items():
        spelled = f"references {target} ({key}) ON DELETE {_ON_DELETE[on_delete]}"
        got = have.get(column)
        where = f"foreign key {table.name}.{column}"
        if got is None:
            found.append(drift.Difference("missing", where, f"the spec {spelled}"))
        elif got != (target, key, _ON_DELETE[on_delete]):
            found.append(
                drift.Difference(
                    "changed", where, f"references {got[0]} ({got[1]}) ON DELETE {got[2]}; the spec {spelled}"
                )
            )
    for column in sorted(set(have) - set(wanted)):
        target, key, _ = have[column]
        found.append(
            drift.Difference(
                "extra", f"foreign key {table.name}.{column}", f"references {target} ({key}), not in the spec"
            )
        )
    return found


def _checks(
    inspector: sa.Inspector,
    dialect: Dialect,
    plugin_id: str,
    table: TableDef,
    physical: PhysicalName,
    live: catalog.LiveTable,
) -> list[drift.Difference]:
    """CHECK constraints: by condition where the database keeps their text as written (SQLite), else by name."""
    wanted = {
        dialect.namer.derived(plugin_id, table.name, [c.name], "check"): condition
        for c in table.columns
        if (condition := dialect.check_condition(c)) is not None
    }
    found: list[drift.Difference] = []
    if dialect.reads_checks:  # the text as written: compared whatever the name (renames keep old names)
        have = {_condition(text): name for name, text in live.checks.items()}
        wanted_text = {_condition(text): name for name, text in wanted.items()}
        found.extend(
            drift.Difference("missing", f"check {name}", f"on {table.name}: CHECK ({wanted[name]}) does not exist")
            for text, name in wanted_text.items()
            if text not in have
        )
        found.extend(
            drift.Difference("extra", f"check {name}", f"on {table.name}: CHECK ({live.checks[name]}), not in the spec")
            for text, name in have.items()
            if text not in wanted_text
        )
        return found
    names = {c["name"] for c in inspector.get_check_constraints(physical.name, schema=physical.schema) if c["name"]}
    found.extend(
        drift.Difference("missing", f"check {name}", f"on {table.name}: CHECK ({wanted[name]}) does not exist")
        for name in sorted(set(wanted) - names)
    )
    found.extend(
        drift.Difference("extra", f"check {name}", f"on {table.name}, not in the spec")
        for name in sorted(names - set(wanted))
    )
    return found


def _condition(text: str) -> str:
    """A CHECK condition as compared: without quotes around names, whitespace or outer parentheses."""
    value = " ".join(text.replace('"', "").split())
    while value.startswith("(") and value.endswith(")"):
        value = value[1:-1].strip()
    return value


def mismatch(source: Retained, found: Sequence[drift.Difference]) -> ProblemError:
    """ES209: the retained objects are not what the retained spec says; each difference named."""
    plugin_id, version = source.plugin_id, source.spec.version
    named = "; ".join(f"{d.kind} {d.object}: {d.detail}" for d in found)
    return ProblemError.one(
        "ES209",
        "spec.pluginId",
        f"plugin {plugin_id!r} cannot adopt the objects `delete --retain` kept (migration {source.migration_id}, "
        f"version {version}): they differ from that version's spec: {named}; nothing was changed. Undo those "
        f"changes by hand so the objects are exactly version {version} (`extschema history {plugin_id} --sql` "
        "shows the SQL that built them), or back up what you need and drop the objects, or choose another pluginId",
        kind="refused",
    )


class Adopt(MigrationBase):
    """Register *source*'s spec again, its objects checked under the lock to be exactly *expected*."""

    def __init__(self, migrator: Migrator, owner: str, source: Retained, expected: Resolved, tables: list[str]) -> None:
        self.migrator, self.owner, self.source, self.expected, self.tables = migrator, owner, source, expected, tables
        self.started = now()

    @property
    def kind(self) -> MigrationKind:  # type: ignore[override]
        return MigrationKind.ADOPT

    def check(self, conn: Connection, current: Registration | None) -> ApplyResult | None:
        if current is not None:  # registered since (adopted, or installed): plan from that
            raise StalePlan(self.source.plugin_id)
        return None

    def render(self, conn: Connection, history: list[MigrationRecord], migration_id: str) -> RenderedPlan:
        registry, plugin_id = self.migrator.registry, self.source.plugin_id
        now_retained = _retained(registry, conn, plugin_id, history)
        if now_retained is None or (now_retained.migration_id, now_retained.checksum) != (
            self.source.migration_id,
            self.source.checksum,
        ):
            raise StalePlan(plugin_id)
        found = differences(conn, self.migrator, self.expected)
        if found:
            raise mismatch(self.source, found)
        return RenderedPlan((), ())

    def record(self, conn: Connection, migration_id: str, rendered: RenderedPlan, duration: int) -> ApplyResult:
        registry, source = self.migrator.registry, self.source
        plugin_id = source.plugin_id
        description = [
            f"adopted the objects retained by migration {source.migration_id} (version {source.spec.version}, "
            f"{len(self.tables)} table(s)): unchanged, registered again"
        ]
        row = MigrationRow(
            plugin_id=plugin_id,
            migration_id=migration_id,
            kind=MigrationKind.ADOPT,
            owner=self.owner,
            spec=source.spec,
            description=description,
            rendered=rendered,
            status=MigrationStatus.EXECUTED,
            started=self.started,
            duration_ms=duration,
        )
        registry.record(conn, row)
        registry.register(conn, self.owner, source.spec, self.tables, exists=False)
        registered = registry.registration(plugin_id, conn)
        return ApplyResult(plugin_id, True, migration_id, description, duration, registration=registered)
