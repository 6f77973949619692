"""Backups of destroyed data: listing them, pruning old ones, and restoring one migration's.

Before a migration drops a table or a column, the dialect copies the data into a backup table
(``extschema_backup.*`` on PostgreSQL, ``extschema_backup__*`` tables on SQLite) in the same
transaction, and the registry records each backup with its row count (``extension_backups``).

A restore copies a migration's backups back into the plugin's *current* tables (names followed
through later renames), by row id — ids are never reused (identity; AUTOINCREMENT on SQLite; a
table created again starts above every backed-up id and every id counter a backup recorded), so an
id names the row a value was taken from or no row. A whole-table backup's rows go back under their
own ids; a row already holding one with the same values was restored before (counted), one with
other values refuses the restore (ES318, naming the ids): nothing is skipped silently or
overwritten. A column backup fills the empty column of every row whose id it holds; a value
written since refuses it too (ES318), and rows deleted since are reported. A value is never
changed: one its column (as the spec has it now) would round, cut or refuse refuses the restore
(ES319) before anything is copied. It runs like any migration — under
the plugin's lock, in one transaction, recorded in the history (kind ``restore``) — and refuses
(ES315) when a target table or column does not exist, naming it, before anything is copied. The one
exception to "current tables" is the restore of a ``delete`` migration when the plugin is not
registered: the spec recorded with the delete is applied first (a normal ``apply`` migration, by
the same owner, creating empty tables and running none of its raw SQL steps), then its rows are
restored (planned above the engine, :func:`extschema.reconcile.restore`, from :func:`restore_source`).
The copying is the ``restore`` kind, :mod:`extschema.engine.kinds.restore`. See docs/operations.md.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from extschema.engine.history import settled_lineage
from extschema.engine.kinds.restore import no_backup
from extschema.engine.registry import BackupRecord, MigrationKind, now, physical
from extschema.model import ExtensionSchemaSpec
from extschema.naming import PhysicalName
from extschema.problems import Kind, Problem, ProblemError

if TYPE_CHECKING:  # the engine's facade imports this module
    from extschema.engine.migrator import Engine

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_duration(text: str) -> datetime.timedelta:
    """``30d``, ``12h``, ``90m``, ``2w``, ``45s`` as a time span; ValueError saying how to write one otherwise."""
    found = _DURATION.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not a duration; write a number and a unit: 30d, 12h, 90m, 2w or 45s")
    return datetime.timedelta(seconds=int(found.group(1)) * _UNITS[found.group(2)])


def listed(engine: Engine, plugin_id: str | None = None) -> list[BackupRecord]:
    """The recorded backups (of one plugin), oldest first; reads only."""
    with engine.registry.reading() as conn:
        return [] if conn is None else engine.registry.backup_rows(conn, plugin_id)


@dataclasses.dataclass(frozen=True)
class Pruning:
    """What a prune dropped (or would drop), the old backups it kept because a rollback reads them
    (or because their plugin's history is not settled), and why, for those plugins (ES317)."""

    pruned: list[BackupRecord]
    kept: list[BackupRecord]
    unsettled: list[Problem] = dataclasses.field(default_factory=list)


def needed_by_rollback(engine: Engine, conn: Connection) -> tuple[set[tuple[str, str]], dict[str, Problem]]:
    """(plugin, migration) of every migration a rollback can still undo: the executed applies that
    built each registered plugin (:func:`~extschema.engine.history.settled_lineage`). Their rollback SQL reads their
    backups to bring dropped data back. Also, by plugin, why a plugin's history is not settled (a
    migration never finished): which backups a rollback needs is then unknown, so it needs them all."""
    history = engine.registry.history_rows(conn, None)
    registered = {r.plugin_id for r in engine.registry.registrations(conn)}
    needed: set[tuple[str, str]] = set()
    unsettled: dict[str, Problem] = {}
    for plugin_id in sorted({r.plugin_id for r in history}):
        own = [r for r in history if r.plugin_id == plugin_id]
        try:
            built = settled_lineage(plugin_id, own, "kept every backup of", "no backup of it is pruned", "prune again")
        except ProblemError as error:
            unsettled[plugin_id] = error.problems[0]
            continue
        if plugin_id in registered:
            needed.update((r.plugin_id, r.migration_id) for r in built)
    return needed, unsettled


def prune(engine: Engine, older_than: datetime.timedelta, dry_run: bool = False, force: bool = False) -> Pruning:
    """Drop the backup tables older than *older_than* and forget them; returns what was (or would be) pruned.

    Backups a rollback still reads are kept unless *force*: pruning them would make that rollback
    impossible (it is then refused, ES314). Every backup of a plugin whose history is not settled
    is kept, also with *force*: what its unfinished migration changed, and so which backups hold
    the only copy of data, is unknown. Each plugin's backups go in one transaction under the
    plugin's migration lock, where what is needed is decided again (a migration may have run since
    the first reading), so a restore never reads a backup half way through being dropped.
    """
    cutoff = now() - older_than

    def split(conn: Connection, records: list[BackupRecord]) -> Pruning:
        needed, unsettled = needed_by_rollback(engine, conn)
        old = [b for b in records if b.created_at < cutoff]
        keep = [b for b in old if b.plugin_id in unsettled or (not force and (b.plugin_id, b.migration_id) in needed)]
        shown = [p for plugin, p in sorted(unsettled.items()) if any(b.plugin_id == plugin for b in old)]
        return Pruning([b for b in old if b not in keep], keep, shown)

    with engine.registry.reading() as conn:
        if conn is None:
            return Pruning([], [])
        planned = split(conn, engine.registry.backup_rows(conn))
    if dry_run or not planned.pruned:
        return planned
    dialect = engine.dialect
    pruned: list[BackupRecord] = []
    for plugin_id in sorted({b.plugin_id for b in planned.pruned}):
        with engine.database.transaction() as conn:
            engine.migrator.lock(conn, plugin_id)
            now_planned = split(conn, engine.registry.backup_rows(conn, plugin_id))
            for record in now_planned.pruned:
                name = PhysicalName(*physical(record.backup_table))
                engine.database.execute(conn, [f"DROP TABLE IF EXISTS {dialect.qualified(name)}"])
                engine.registry.forget_backup(conn, record)
            pruned.extend(now_planned.pruned)
    kept = [b for b in planned.kept if b not in pruned]
    kept += [b for b in planned.pruned if b not in pruned]
    return Pruning(pruned, kept, planned.unsettled)


# --- restore (the kind: :mod:`extschema.engine.kinds.restore`) ---------------------------------


@dataclasses.dataclass(frozen=True)
class RestoreSource:
    """Whose backups a restore of a migration copies back, read without the lock."""

    plugin_id: str
    #: The migration whose backups are restored.
    migration_id: str
    #: The owner and spec recorded with the delete migration being restored, when the plugin is not
    #: registered: applied first (empty tables; its raw steps not run) so its rows have tables to go back to.
    reapply: tuple[str, ExtensionSchemaSpec] | None = None


def restore_source(engine: Engine, migration_id: str, plugin_id: str | None = None) -> RestoreSource:
    """What restoring *migration_id*'s backups takes (see the module's docstring): refused (ES314,
    ES315) before anything runs when it cannot finish."""
    with engine.registry.reading() as conn:
        records = [] if conn is None else engine.registry.backup_rows(conn, plugin_id, migration_id)
        history = [] if conn is None else engine.registry.history_rows(conn, plugin_id)
    if not records:
        ran = [r for r in history if r.migration_id == migration_id]
        why = "took no backup (it destroyed no data)" if ran else "no such migration has a backup"
        if any(r.kind == MigrationKind.UNREGISTER for r in ran):  # delete --retain: the rows are in place
            why = (
                "took no backup: `delete --retain` kept the plugin's tables and their rows where they are; apply "
                "the plugin again to adopt them (docs/databases.md, Retain and adopt)"
            )
        raise no_backup(migration_id, plugin_id, why)
    plugins = sorted({r.plugin_id for r in records})
    if len(plugins) > 1:
        raise no_backup(
            migration_id, None, f"several plugins have backups of it ({', '.join(plugins)}); choose one with --plugin",
            Kind.USAGE,
        )  # fmt: skip
    plugin = plugins[0]
    if engine.registration(plugin) is not None:
        return RestoreSource(plugin, migration_id)
    origin = next((r for r in history if r.plugin_id == plugin and r.migration_id == migration_id), None)
    with engine.database.reading() as conn:
        inspector = sa.inspect(conn)
        names = [PhysicalName(*physical(r.backup_table)) for r in records]
        gone = [str(n) for n in names if not inspector.has_table(n.name, schema=n.schema)]
    if gone:  # checked before re-applying: a restore that cannot finish must not start
        raise no_backup(migration_id, plugin, f"its backup tables no longer exist: {', '.join(gone)}")
    if origin is None or origin.kind != MigrationKind.DELETE:
        raise ProblemError.one(
            "ES315",
            "MIGRATION_ID",
            f"plugin {plugin!r} is not registered, so migration {migration_id} has no "
            "tables to restore into; apply the plugin's spec first, or restore the delete migration that removed it "
            "(which re-applies its spec)",
            kind=Kind.REFUSED,
        )
    with engine.database.transaction(read_only=True) as conn:
        row = engine.registry.migration_row(conn, plugin, migration_id)
        spec = engine.registry.guarded(conn, plugin, lambda: ExtensionSchemaSpec.model_validate(row.schema_definition))
        owner = str(row.owner)
    return RestoreSource(plugin, migration_id, (owner, spec))
