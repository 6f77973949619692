"""``restore``: copy a migration's backups back into the plugin's current tables (see
:mod:`extschema.engine.backups`), refusing before anything is copied when a value would be
overwritten (ES318), changed (ES319) or has nowhere to go (ES315)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from extschema import naming, planning
from extschema.dialects import Dialect, RenderedPlan
from extschema.engine.history import settled_lineage
from extschema.engine.registry import (
    ENDING_KINDS,
    BackupRecord,
    MigrationKind,
    MigrationRecord,
    MigrationStatus,
    Registration,
    now,
    physical,
)
from extschema.engine.runner import ApplyResult, MigrationBase, Migrator, not_registered
from extschema.model import ExtensionSchemaSpec
from extschema.naming import PhysicalName
from extschema.planning import ColumnDef
from extschema.planning.diff import renames
from extschema.problems import Kind, Problem, ProblemError


def no_backup(migration_id: str, plugin_id: str | None, why: str, kind: Kind = Kind.REFUSED) -> ProblemError:
    """ES314: *migration_id* has no backup to restore, *why*."""
    where = f"migration {migration_id}" + (f" of plugin {plugin_id!r}" if plugin_id else "")
    return ProblemError.one("ES314", "MIGRATION_ID", f"{where}: {why}; `extschema backups` lists them", kind=kind)


@dataclasses.dataclass
class _Copy:
    """The statements restoring one backup, and what they restore (counted under the lock)."""

    statements: list[str]
    description: str
    #: How many rows or values it copies (0: everything is in place already).
    copied: int


class Restore(MigrationBase):
    kind = MigrationKind.RESTORE

    def __init__(self, migrator: Migrator, plugin_id: str, source: str) -> None:
        self.migrator, self.plugin_id, self.source = migrator, plugin_id, source
        self.started = now()
        self.description: list[str] = []
        self.copies: list[_Copy] = []

    def check(self, conn: Connection, current: Registration | None) -> ApplyResult | None:
        if current is None:  # deleted since the restore was asked for
            raise not_registered(self.plugin_id)
        self.current = current
        # Copies worked out under the lock, before anything is recorded: a restore copying nothing records nothing.
        copies = self._copies(conn, self.migrator.registry.history_rows(conn, self.plugin_id))
        if not any(c.copied for c in copies):
            already = [c.description for c in copies]
            why = f"nothing to restore from migration {self.source}: every backed-up row and value is in place"
            return ApplyResult(self.plugin_id, False, None, [why, *already])
        self.copies = copies
        return None

    def preview_lines(self, migration_id: str) -> list[str]:
        copies = [f"restores {line.removeprefix('restored ')}" for line in self.description]
        return [f"restores backups of migration {self.source}", *copies]

    def render(self, conn: Connection, history: list[MigrationRecord], migration_id: str) -> RenderedPlan:
        self.description = [c.description for c in self.copies]
        return RenderedPlan(tuple(s for c in self.copies for s in c.statements), ())

    def _copies(self, conn: Connection, history: list[MigrationRecord]) -> list[_Copy]:
        records = self.migrator.registry.backup_rows(conn, self.plugin_id, self.source)
        if not records:  # pruned since it was read
            raise no_backup(self.source, self.plugin_id, "its backups were pruned")
        inspector = sa.inspect(conn)
        problems: list[Problem] = []
        copies: list[_Copy] = []
        specs = self._specs_since(conn, history)
        assert self.current is not None
        now_shaped = planning.shape(self.current.spec)
        # Reverse order: a delete backs up dependents first; referenced tables must be filled first.
        for record in sorted(records, key=lambda r: r.position, reverse=True):
            # Into what the backed-up table and column are called now, after later renames.
            table, column = renames.followed(specs, record.source_table, record.source_column)

            def follow(name: str, source: str = record.source_table) -> str:
                return renames.followed(specs, source, name)[1] or name

            shaped = now_shaped.table(table)
            # The columns as the spec has them now, to refuse a value they would not keep as it is
            # (ids referencing other rows are left to their foreign keys).
            defs = {c.name: c for c in shaped.columns if c.foreign_key is None} if shaped else {}
            try:
                copies.append(_copy(conn, inspector, self.migrator.dialect, record, table, column, follow, defs))
            except ProblemError as error:
                problems.extend(error.problems)
        if problems:
            raise ProblemError(problems, kind=Kind.REFUSED)
        return copies

    def _specs_since(self, conn: Connection, history: list[MigrationRecord]) -> list[ExtensionSchemaSpec]:
        """The specs from the backed-up migration's on, in order: the lineage from it, or — for the
        plugin's last delete — the deleted spec then every spec applied since. None when it is no
        longer part of what the plugin is now (e.g. rolled back, or an earlier delete)."""
        # What the plugin is now is unknown while a migration never finished: names followed through
        # it could put values into the wrong column (ES317, as rollback and prune say).
        built = settled_lineage(self.plugin_id, history, "cannot restore into", "nothing was restored", "restore again")
        ids = [r.migration_id for r in built]
        executed = [r for r in history if r.status == MigrationStatus.EXECUTED]
        ending = next((r for r in reversed(executed) if r.kind in ENDING_KINDS), None)
        if self.source in ids:
            chosen = [r.migration_id for r in built[ids.index(self.source) :]]
        elif ending is not None and ending.migration_id == self.source:
            chosen = [self.source, *ids]
        else:
            return []
        registry = self.migrator.registry
        specs = []
        for migration_id in chosen:
            definition = registry.migration_row(conn, self.plugin_id, migration_id).schema_definition
            load = functools.partial(ExtensionSchemaSpec.model_validate, definition)
            specs.append(registry.guarded(conn, self.plugin_id, load))
        return specs

    def record(self, conn: Connection, migration_id: str, rendered: RenderedPlan, duration: int) -> ApplyResult:
        assert self.current is not None
        description = [f"restored backups of migration {self.source}", *self.description]
        self.migrator.registry.record(
            conn, self.executed_row(migration_id, description, rendered, self.started, duration)
        )
        return ApplyResult(self.plugin_id, True, migration_id, description, duration)


def _columns(inspector: sa.Inspector, name: PhysicalName) -> dict[str, Any] | None:
    """A table's reflected columns by name, or None when it does not exist."""
    if not inspector.has_table(name.name, schema=name.schema):
        return None
    return {c["name"]: c for c in inspector.get_columns(name.name, schema=name.schema)}


def _missing_target(record: BackupRecord, what: str, fix: str) -> ProblemError:
    return ProblemError.one(
        "ES315",
        record.source_table if record.source_column is None else f"{record.source_table}.{record.source_column}",
        f"cannot restore {record.backup_table} of migration {record.migration_id}: {what} does not exist; {fix}, "
        "then run the restore again",
        kind=Kind.REFUSED,
    )


def _ids(found: list[Any], total: int) -> str:
    """``id 3`` / ``ids 1, 2`` (the first of *total*, then how many more)."""
    named = ", ".join(str(i) for i in found)
    more = f", … ({total - len(found)} more)" if total > len(found) else ""
    return f"{'id' if total == 1 else 'ids'} {named}{more}"


#: How many ids a refusal or a report names (it counts the rest).
_NAMED_IDS = 20


def _copy(
    conn: Connection,
    inspector: sa.Inspector,
    dialect: Dialect,
    record: BackupRecord,
    table: str,
    column: str | None,
    follow: Callable[[str], str],
    defs: Mapping[str, ColumnDef],
) -> _Copy:
    """Restore *record* into *table* (and *column*): the source's names now; *follow* names a
    backed-up column of a whole-table backup as the table calls it now; *defs* are the table's
    columns as the registered spec has them.

    Refused (ES319) when a value to be written does not fit its column as it is now: a restore
    never changes a value (rounds a decimal, cuts a string), and never fails half way on one."""
    backup = PhysicalName(*physical(record.backup_table))
    target = dialect.namer.table(record.plugin_id, table)
    saved = _columns(inspector, backup)
    if saved is None:
        raise no_backup(
            record.migration_id, record.plugin_id, f"its backup table {record.backup_table} no longer exists"
        )
    present = _columns(inspector, target)
    if present is None:
        raise _missing_target(
            record,
            f"table {table} ({target})",
            "roll back the migration that dropped it or add the table to the spec again and apply",
        )
    b, t = dialect.qualified(backup), dialect.qualified(target)

    def ids(query: str) -> tuple[list[Any], int]:
        total = conn.execute(sa.text(f"SELECT count(*) FROM ({query}) AS found")).scalar_one()
        first = conn.execute(sa.text(f"{query} ORDER BY 1 LIMIT {_NAMED_IDS}")).scalars().all()
        return list(first), int(total)

    if column is not None:
        if column not in present:
            raise _missing_target(
                record,
                f"column {table}.{column}",
                "roll back the migration that dropped it or add the field to the spec again and apply",
            )
        # Ids are never reused (identity; AUTOINCREMENT on SQLite), so a backed-up id names the row
        # the value was taken from or no row: a row deleted since gets nothing, and is reported.
        gone, lost = ids(f"SELECT {b}.id FROM {b} WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE {t}.id = {b}.id)")
        _refuse_unfit(conn, dialect, record, table, b, saved, [(record.source_column or column, column)], defs,
                      f"{b}.id IN (SELECT id FROM {t})", ids)  # fmt: skip
        quoted = dialect.quote(column)
        value = _value(dialect, f"{b}.{dialect.quote(record.source_column or column)}", present[column])
        now = f"{t}.{quoted}"
        # A value written since (not NULL, not the backed-up one as the column holds it now) is never
        # overwritten: it has no backup. Compared as text after the column's own conversion.
        type_sql = dialect.sa_dialect.type_compiler_instance.process(present[column]["type"])
        same = f"CAST({now} AS TEXT) = CAST({dialect.as_stored(value, type_sql)} AS TEXT)"
        held = f"SELECT {b}.id FROM {b} JOIN {t} ON {t}.id = {b}.id WHERE {now} IS NOT NULL"
        taken, clashes = ids(f"{held} AND NOT COALESCE({same}, FALSE)")
        if clashes:
            raise ProblemError.one(
                "ES318",
                f"{record.source_table}.{record.source_column or column}",
                f"cannot restore {record.backup_table} of migration {record.migration_id} into {table}.{column}: "
                f"{clashes} backed-up row(s) hold other values written since ({_ids(taken, clashes)}). A restore "
                "never overwrites a value it did not back up; nothing was restored. Copy those values out and set "
                f"them to NULL, then run the restore again — or copy the values of {record.backup_table} back by hand",
                kind=Kind.REFUSED,
            )
        already = conn.execute(sa.text(f"SELECT count(*) FROM ({held}) AS found")).scalar_one()
        empty = f"id IN (SELECT id FROM {b}) AND {quoted} IS NULL"
        found = conn.execute(sa.text(f"SELECT count(*) FROM {t} WHERE {empty}")).scalar_one()
        # Indexed by id first: the lookup runs once per row (1M rows: seconds, not hours).
        index = dialect.quote(naming.fit(f"{backup.name}_id"))
        statements = [
            f"CREATE INDEX IF NOT EXISTS {index} ON {b} (id)",
            f"UPDATE {t} SET {quoted} = (SELECT {value} FROM {b} WHERE {b}.id = {t}.id) WHERE {empty}",
        ]
        notes = [f"{already} already restored"] if already else []
        if lost:
            notes.append(f"{lost} backed-up row(s) deleted since, not restored: {_ids(gone, lost)}")
        description = f"restored {found} value(s) of {table}.{column}"
        if notes:
            description += f" ({'; '.join(notes)})"
        return _Copy(statements, description, int(found))
    if "id" not in saved or "id" not in present:
        raise _missing_target(record, f"column {table}.id", "the table must have its id column")
    # Backed-up columns under their names now (renamed since: followed); those the table lost are reported.
    moved = {name: follow(name) for name in saved if name != "id"}
    shared = [(old, new) for old, new in moved.items() if new in present and new != "id"]
    left = [old for old, new in moved.items() if new not in present]
    names = ", ".join(dialect.quote(n) for n in ["id", *(new for _, new in shared)])
    values = [_value(dialect, f"{b}.{dialect.quote(old)}", present[new]) for old, new in shared]
    # A row already holding a backed-up id is that row restored before only if it holds the same values
    # (compared as text: a type changed since, or an enum kept as text in the backup, still compares).
    same = " AND ".join(
        f"COALESCE(CAST({now} AS TEXT) = CAST({was} AS TEXT), {now} IS NULL AND {was} IS NULL)"
        for now, was in ((f"{t}.{dialect.quote(new)}", f"{b}.{dialect.quote(old)}") for old, new in shared)
    )
    held = f"SELECT {b}.id FROM {b} JOIN {t} ON {t}.id = {b}.id"
    taken, clashes = ids(f"{held} WHERE NOT ({same})" if same else f"{held} WHERE 1 = 0")
    if clashes:
        raise ProblemError.one(
            "ES318",
            record.source_table,
            f"cannot restore {record.backup_table} of migration {record.migration_id} into table {table}: "
            f"{clashes} backed-up row(s) have ids that rows written since hold with other values "
            f"({_ids(taken, clashes)}). A restore puts each row back under its own id (so rows referencing it "
            "point at it again) and never overwrites or skips one; nothing was restored. Move those rows to "
            f"other ids or delete them (copy them out first), then run the restore again — or copy the rows of "
            f"{record.backup_table} back by hand under new ids",
            kind=Kind.REFUSED,
        )
    absent = f"NOT EXISTS (SELECT 1 FROM {t} WHERE {t}.id = {b}.id)"
    _refuse_unfit(conn, dialect, record, table, b, saved, shared, defs, absent, ids)
    already = conn.execute(sa.text(f"SELECT count(*) FROM ({held}) AS found")).scalar_one()
    found = conn.execute(sa.text(f"SELECT count(*) FROM {b} WHERE {absent}")).scalar_one()
    selected = ", ".join([f"{b}.id", *values])
    statements = [f"INSERT INTO {t} ({names}) SELECT {selected} FROM {b} WHERE {absent}"]
    if present["id"].get("identity") is not None:
        # An identity column does not see ids inserted explicitly: move it past them.
        sequence = f"pg_get_serial_sequence({dialect.literal(t)}, 'id')"
        statements.append(
            f"SELECT setval({sequence}, top) FROM (SELECT max(id) AS top FROM {t}) AS restored "
            f"WHERE top > COALESCE(pg_sequence_last_value({sequence}::regclass), 0)"
        )
    description = f"restored {found} row(s) of {table}"
    notes = [f"{already} already restored"] if already else []
    if left:
        notes.append(f"not restored, no longer in the table: {', '.join(left)}")
    if notes:
        description += f" ({'; '.join(notes)})"
    return _Copy(statements, description, int(found))


def _refuse_unfit(
    conn: Connection,
    dialect: Dialect,
    record: BackupRecord,
    table: str,
    backup: str,
    saved: dict[str, Any],
    columns: list[tuple[str, str]],
    defs: Mapping[str, ColumnDef],
    written: str,
    ids: Callable[[str], tuple[list[Any], int]],
) -> None:
    """ES319 naming, per column, the rows of *backup* (its columns reflected: *saved*) that are to be
    *written* (a condition) whose value in a (backed-up name, column now) pair of *columns* the column
    would not keep as it is."""
    problems = []
    for old, new in columns:
        if new not in defs:  # not the spec's (made by hand): the database's own rules apply
            continue
        column = defs[new]
        stored = saved[old]["type"] if old in saved else None
        unfit = dialect.unfit_restore(record.plugin_id, backup, old, column, stored)
        found, count = ids(f"SELECT {backup}.id FROM {backup} WHERE {written} AND ({unfit})")
        if count:
            problems.append(
                Problem(
                    "ES319",
                    f"{table}.{new}",
                    f"cannot restore {record.backup_table} of migration {record.migration_id}: {count} backed-up "
                    f"value(s) of {table}.{new} do not fit the column as it is now "
                    f"({_field(column)}) ({_ids(found, count)}): writing them would round, cut or refuse them, "
                    "and a restore never changes a value; nothing was restored. To restore them, widen the field "
                    "in the spec so it holds them (a new version, applied), or go back to a version where it does, "
                    f"then run the restore again — or copy those values from {record.backup_table} by hand",
                )
            )
    if problems:
        raise ProblemError(problems, kind=Kind.REFUSED)


def _field(column: ColumnDef) -> str:
    """A column as its field reads in a spec: ``Decimal, precision 10, scale 1, required``."""
    parts: list[str] = [column.type]
    if column.type == "Decimal":
        parts.append(f"precision {column.precision}, scale {column.scale}")
    elif column.type == "String":
        parts.append(f"maxLength {column.string_length}")
    return ", ".join(parts + ([] if column.nullable else ["required"]))


def _value(dialect: Dialect, expression: str, target: dict[str, Any]) -> str:
    """A backed-up value as the target column takes it: enum values are kept as text in backups."""
    if isinstance(target["type"], sa.Enum) and target["type"].name:
        type_sql = dialect.sa_dialect.type_compiler_instance.process(target["type"])
        return f"CAST({expression} AS {type_sql})"
    return expression
