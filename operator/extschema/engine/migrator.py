"""Executes plans against a database, safely — one path for apply, rollback and delete.

Every migration runs in one transaction: on PostgreSQL under ``pg_advisory_xact_lock`` keyed by
the plugin, with ``lock_timeout`` and ``statement_timeout`` set after the lock is held; on SQLite
under ``BEGIN IMMEDIATE`` (the database-wide write lock). Inside the lock the registry is read
again, so concurrent appliers of the same spec execute it exactly once and a plan computed from
a registry that has since moved is refused as stale. Then, always in this order: lock → verify
the history's checksums → render (the migration id names backups; an apply, and a gated rollback,
first lock the tables whose fields they narrow and count again the rows that break them — and those
breaking a rule a rebuild adds to a table that predates it (SQLite's Int range) — refusing with ES309:
the rows counted are the rows the change meets) → execute → record. Any error
rolls the whole migration back; a failed apply is then recorded in a separate transaction with
the database's message.

Each kind of migration (:class:`_Apply`, :class:`_Rollback`, :class:`_Delete`) only says what it
checks, what SQL it runs and how the registry changes; :meth:`Engine._migrate` owns the rest.

Some steps cannot run in that transaction (PostgreSQL, :class:`RenderedPlan`): new enum values are
committed first in their own locked transaction (``before``, idempotent), and new indexes on
populated tables are built concurrently after COMMIT (``after``). A migration (an apply, a drift
repair) records its ``after`` statements as a ``finish`` migration with status ``pending`` in its own
transaction; building them marks it ``executed``. A migration interrupted between the two (killed, a
lock timeout, a failed build) is finished by the plugin's next migration, before anything else, under
the plugin's lock: leftover INVALID indexes are dropped concurrently, then the builds (``IF NOT
EXISTS``) run again. A rollback or a delete cancels a pending finish instead (its rollback SQL drops
those indexes ``IF EXISTS``).
A lock timeout (another session holds the table) is retried a few times with jittered backoff.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import random
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from extschema import limits, model, planning
from extschema.dialects import BackupRef, Dialect, RenderedPlan
from extschema.engine import catalog, checks
from extschema.engine.connection import Database
from extschema.engine.registry import (
    ENDING_KINDS,
    Definition,
    MigrationKind,
    MigrationRecord,
    MigrationRow,
    MigrationStatus,
    Registration,
    Registry,
    now,
    physical,
    statements_of,
)
from extschema.model import ExtensionSchemaSpec, FieldType
from extschema.naming import PhysicalName, backup_tag
from extschema.planning import Plan, rawsql
from extschema.problems import Problem, ProblemError

_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True)
class ApplyResult:
    plugin_id: str
    changed: bool
    migration_id: str | None
    description: list[str]
    duration_ms: int | None = None
    #: The executed plan's warnings (:attr:`RenderedPlan.warnings`): what this database leaves unenforced.
    warnings: tuple[Problem, ...] = ()
    #: An apply's: the plugin's registration as the migration left it (or found it, with nothing to do),
    #: read under the migration's lock; None for the other kinds.
    registration: Registration | None = None


class StalePlan(Exception):
    """The registry moved between planning and locking: plan again."""


def lock_key(plugin_id: str) -> tuple[int, int]:
    """Two signed 32-bit keys from SHA-256 (``hashtext`` is 32-bit and collides)."""
    digest = hashlib.sha256(f"extschema:{plugin_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True), int.from_bytes(digest[4:8], "big", signed=True)


def _not_registered(plugin_id: str) -> ProblemError:
    return ProblemError.one(
        "ES306", "plugin", f"plugin {plugin_id!r} is not registered; see `extschema status`", kind="refused"
    )


def registered_by_another(plugin_id: str, holder: str) -> ProblemError:
    """ES201: *plugin_id* is registered by *holder*, not by the spec being planned or applied."""
    return ProblemError.one(
        "ES201",
        "spec.pluginId",
        f"plugin {plugin_id!r} is already registered by {holder!r}; choose another pluginId, or delete that one first",
        kind="conflict",
    )


def registered_tables(dialect: Dialect, spec: ExtensionSchemaSpec) -> list[str]:
    """The physical tables *spec* owns (its tables and many-to-many join tables), as the registry lists them."""
    _, joins = model.resolve_relationships(spec)
    names = [t.name for t in spec.tables] + [j.name for j in joins]
    return [str(dialect.namer.table(spec.plugin_id, name)) for name in names]


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


#: How often a migration finishes pending builds and looks again before giving up (another applier
#: would have to leave new ones pending each time in between).
_PENDING_ROUNDS = 3


def _finish_id(applied: str) -> str:
    """The id of the ``finish`` migration an apply records for its ``after`` phase: the next one."""
    return f"{int(applied) + 1:04d}"


def _applied_by(finish_id: str) -> str:
    """The apply a ``finish`` migration belongs to: it is recorded with the next id, in the same transaction."""
    return f"{int(finish_id) - 1:04d}"


class _PendingFinish(Exception):
    """The plugin has a pending ``finish`` migration to build before this migration runs."""

    def __init__(self, applied: str) -> None:
        super().__init__(applied)
        self.applied = applied


def _unfinished(plugin_id: str, migration_id: str, error: ProblemError) -> ProblemError:
    """The after phase failed: the migration is applied, its concurrent index builds are pending."""
    problem = error.problems[0]
    return ProblemError.one(
        problem.code,
        problem.path,
        f"migration {migration_id} of plugin {plugin_id!r} is applied, but building its indexes concurrently "
        f"failed: {problem.message}; the plugin's next apply or drift repair finishes them (or roll it back)",
        kind=error.kind,
    )


def lineage(records: list[MigrationRecord]) -> list[MigrationRecord]:
    """The executed applies that built what the plugin is now: those after its last delete/unregister
    (read it through :func:`settled_lineage`, which refuses when the history is not settled).

    Migrations that were rolled back, failed, or never finished (``executing``, left by a crash:
    their transaction rolled back) changed nothing and are not part of it.
    """
    ended = max(
        (i for i, r in enumerate(records) if r.kind in ENDING_KINDS and r.status == MigrationStatus.EXECUTED),
        default=-1,
    )
    return [r for r in records[ended + 1 :] if r.kind == MigrationKind.APPLY and r.status == MigrationStatus.EXECUTED]


#: Statuses a migration leaves behind only when it never finished (``executing``: a crash, or a hand
#: edit); ``pending`` is unfinished too, except for a ``finish`` migration (a rollback cancels that).
_UNFINISHED = (MigrationStatus.EXECUTING, MigrationStatus.PENDING)


def settled_lineage(
    plugin_id: str,
    records: list[MigrationRecord],
    refused: str = "cannot roll back",
    outcome: str = "nothing was changed",
    then: str = "roll back again",
) -> list[MigrationRecord]:
    """The plugin's :func:`lineage`, whose last migration is the current one (the one a rollback
    undoes), once its history is settled: the one place that says both, for rollback and prune.

    ES317 when a migration since the plugin's last delete never finished: what it changed is unknown,
    so neither it nor the one before it can be undone safely (skipping it would undo the migration
    before, against a database that may hold both), and no backup of the plugin is known to be
    unneeded. *refused*, *outcome* and *then* word the message for the caller.
    """
    ended = max(
        (i for i, r in enumerate(records) if r.kind in ENDING_KINDS and r.status == MigrationStatus.EXECUTED),
        default=-1,
    )
    stuck = [
        r
        for r in records[ended + 1 :]
        if r.status in _UNFINISHED and not (r.kind == MigrationKind.FINISH and r.status == MigrationStatus.PENDING)
    ]
    if stuck:
        named = ", ".join(f"{r.migration_id} ({r.kind} of version {r.version or '?'})" for r in stuck)
        raise ProblemError.one(
            "ES317",
            "plugin",
            f"{refused} plugin {plugin_id!r}: migration {named} is recorded as {stuck[-1].status!r}: it never "
            f"finished (a crash, or an edit of extension_migrations), so what it changed is unknown; {outcome}. "
            f"Compare the database with `extschema drift {plugin_id}` and `extschema history {plugin_id} --sql`, "
            "then set that row's status in extension_migrations to 'executed' if its changes are in place "
            f"or 'failed' if they are not, and {then}",
            kind="refused",
        )
    return lineage(records)


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
    #: The recorded rollback statements: exactly what runs (the engine refuses others as stale).
    statements: tuple[str, ...] = ()
    #: The backups taken before the raw steps' ``rollbackSql`` runs (every table it names, whole).
    sql_backups: tuple[BackupRef, ...] = ()


def _sql_backup_tag(migration_id: str) -> str:
    """How the backups taken before a rollback's ``rollbackSql`` are named: ``…__r<the migration undone>``
    (``r``, not the ``m`` of the migration's own backups, which the same rollback may also take of a table)."""
    return f"r{migration_id}"


def _undone(
    engine: Engine, conn: Connection, previous: ExtensionSchemaSpec | None, target: ExtensionSchemaSpec
) -> Plan | None:
    """The plan the migration from *previous* to *target* ran, planned again; None when this planner
    refuses it (a plan made by hand, or by another version)."""
    registered = [r.spec for r in engine.registry.registrations(conn)]
    refs = catalog.reference_types(engine.database, registered, [s for s in (previous, target) if s is not None])
    try:
        return planning.plan(previous, target, refs)
    except ProblemError:
        return None


class _Migration:
    """What one kind of migration decides; :meth:`Engine._migrate` runs it under the lock."""

    kind: MigrationKind = MigrationKind.APPLY
    #: The registration as read under the lock (set by :meth:`check` where one is required).
    current: Registration | None = None
    #: What :meth:`render` returned, once it ran.
    rendered: RenderedPlan | None = None
    #: Whether the main transaction committed (a failure after it leaves the migration applied).
    committed = False
    #: A pending ``finish`` of an earlier apply is built first (True), or cancelled (False: the
    #: migration undoes or drops what it would build).
    finishes_pending = True
    #: The plugin's tables' id counters, read just before the migration's statements run (a table
    #: it drops takes its counter along): recorded with its whole-table backups.
    id_counters: dict[str, int] = {}

    def before(self) -> list[str]:
        """Statements committed on their own before the main transaction (idempotent)."""
        return []

    def check(self, conn: Connection, current: Registration | None) -> ApplyResult | None:
        """Refuse (raise), or return a result when there is nothing to do, before the history is verified."""
        return None

    def render(self, conn: Connection, history: list[MigrationRecord], migration_id: str) -> RenderedPlan:
        raise NotImplementedError

    def record(self, conn: Connection, migration_id: str, rendered: RenderedPlan, duration: int) -> ApplyResult:
        raise NotImplementedError

    def recorded_as(self) -> tuple[str, ExtensionSchemaSpec, Definition | None, datetime.datetime]:
        """The owner and spec its ``finish`` migration is recorded with, the spec's definition if made,
        and when the migration started."""
        assert self.current is not None
        return self.current.owner, self.current.spec, None, now()

    def executed_row(
        self,
        migration_id: str,
        description: list[str],
        rendered: RenderedPlan,
        started: datetime.datetime,
        duration: int,
    ) -> MigrationRow:
        """The history row of this migration, executed, by the registration it started from (the
        migrations that change no spec: delete, unregister, repair, restore)."""
        assert self.current is not None
        return MigrationRow(
            plugin_id=self.current.plugin_id,
            migration_id=migration_id,
            kind=self.kind,
            owner=self.current.owner,
            spec=self.current.spec,
            description=description,
            rendered=rendered,
            status=MigrationStatus.EXECUTED,
            started=started,
            duration_ms=duration,
        )


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

    # --- the one migration path ---------------------------------------------------------------

    def _lock(self, conn: Connection, plugin_id: str) -> None:
        preamble = self.dialect.migration_preamble(lock_key(plugin_id), self.lock_timeout_ms, self.statement_timeout_ms)
        self.database.execute(conn, preamble)

    def _migrate(self, plugin_id: str, migration: _Migration, foreign_keys_off: bool = False) -> ApplyResult:
        """[before] → lock → check → verify → render → execute → record → [after].

        The middle runs in one transaction; each part is retried on a lock timeout. A pending
        ``after`` phase of an earlier apply is finished (or cancelled) first.
        """
        self.registry.ensure()
        clock = time.perf_counter()
        before = migration.before()
        if before:
            done = self._retrying(lambda: self._before(plugin_id, migration, before))
            if done is not None:
                return done
        for _ in range(_PENDING_ROUNDS):
            try:
                result = self._retrying(lambda: self._main(plugin_id, migration, foreign_keys_off, clock))
                break
            except _PendingFinish as pending:
                self._finish(plugin_id, pending.applied)
        else:
            raise ProblemError.one(
                "ES403", "database", f"plugin {plugin_id!r} kept changing while it was being migrated; try again",
                kind="retryable",
            )  # fmt: skip
        migration.committed = True
        if migration.rendered is not None and migration.rendered.after and result.migration_id is not None:
            self._finish(plugin_id, result.migration_id)
        return result

    def _before(self, plugin_id: str, migration: _Migration, before: Sequence[str]) -> ApplyResult | None:
        """Commit *before* under the plugin's lock, unless the migration has nothing to do or is stale."""
        with self.database.transaction() as conn:
            self._lock(conn, plugin_id)
            done = migration.check(conn, self.registry.registration(plugin_id, conn))
            if done is None:
                self.database.execute(conn, before)
            return done

    def _main(self, plugin_id: str, migration: _Migration, foreign_keys_off: bool, clock: float) -> ApplyResult:
        fk_off = foreign_keys_off or self.dialect.migrations_without_foreign_keys
        with self.database.transaction(fk_off) as conn:
            self._lock(conn, plugin_id)
            pending = self._pending(conn, plugin_id)
            if pending and migration.finishes_pending:
                raise _PendingFinish(_applied_by(pending[0]))
            for migration_id in pending:  # cancelled: this migration drops what they would build
                self.registry.set_migration_status(conn, plugin_id, migration_id, MigrationStatus.ROLLED_BACK)
            done = migration.check(conn, self.registry.registration(plugin_id, conn))
            if done is not None:
                return done
            history = self.registry.verify_history(conn, plugin_id)
            migration_id = self.registry.next_migration_id(conn, plugin_id, history)
            rendered = migration.rendered = migration.render(conn, history, migration_id)
            migration.id_counters = self.dialect.id_counters(conn, plugin_id)
            self.database.execute(conn, rendered.statements, rendered.foreign_keys_off or fk_off)
            result = migration.record(conn, migration_id, rendered, int((time.perf_counter() - clock) * 1000))
            if rendered.after:  # whatever the kind: _migrate builds it after COMMIT, from this record
                self._record_finish(conn, plugin_id, migration_id, migration, rendered.after)
            return result

    def _record_finish(
        self, conn: Connection, plugin_id: str, migration_id: str, migration: _Migration, after: Sequence[str]
    ) -> None:
        """Record *after* as the ``finish`` migration of *migration_id*, pending until :meth:`_build` runs it."""
        owner, spec, definition, started = migration.recorded_as()
        steps = [f"after migration {migration_id}, outside its transaction: {s}" for s in after]
        rendered = RenderedPlan(statements=tuple(after), rollback=())
        row = MigrationRow(
            plugin_id=plugin_id,
            migration_id=_finish_id(migration_id),
            kind=MigrationKind.FINISH,
            owner=owner,
            spec=spec,
            description=steps,
            rendered=rendered,
            status=MigrationStatus.PENDING,
            started=started,
            definition=definition,
        )
        self.registry.record(conn, row)

    def render_plan(self, conn: Connection, plan: Plan, migration_id: str) -> RenderedPlan:
        """Render *plan* for the migration *migration_id*, read under its lock: refused (ES301) when it
        would destroy what was made outside extschema; new indexes of tables holding rows built after
        COMMIT, concurrently (the ``after`` phase :meth:`_main` records and :meth:`_migrate` runs); a
        table it creates starts its ids above every id a backup of it holds (:func:`id_floors`)."""
        dialect, plugin_id = self.dialect, plan.plugin_id
        # The approver's counts were read before the lock: rows written since break no narrowed field.
        checks.refuse_violations(conn, dialect, plan)
        candidates = dialect.concurrent_candidates(plan)
        populated = {t for t in candidates if conn.exec_driver_sql(dialect.has_rows_sql(plugin_id, t)).scalar()}
        hand_made = dialect.hand_made_problems(conn, plan)
        if hand_made:
            raise ProblemError(hand_made, kind="refused")
        floors = id_floors(self, conn, plan)
        return dialect.render_plan(plan, backup_tag(migration_id), populated, floors)

    def _retrying(self, step: Callable[[], _T]) -> _T:
        """Run *step*; when it could not get a lock in time, wait a random while (full jitter,
        growing exponentially) and run it again, up to LOCK_RETRY_ATTEMPTS in all."""
        started = time.monotonic()
        for attempt in range(1, limits.LOCK_RETRY_ATTEMPTS + 1):
            try:
                return step()
            except ProblemError as error:
                if not self.dialect.lock_conflict(error.__cause__):
                    raise
                if attempt == limits.LOCK_RETRY_ATTEMPTS:
                    seconds = time.monotonic() - started
                    raise ProblemError.one(
                        "ES403",
                        "database",
                        f"{error.problems[0].message} (gave up after {attempt} attempts in {seconds:.1f} s: other "
                        "sessions hold locks on the tables it changes; try again later, or raise lockTimeout)",
                        kind="retryable",
                    ) from error
                pause = min(limits.LOCK_RETRY_CAP_S, limits.LOCK_RETRY_BASE_S * 2 ** (attempt - 1))
                time.sleep(random.uniform(0, pause))  # jitter, not security
        raise AssertionError("unreachable")

    # --- the after phase: concurrent builds, outside any transaction -------------------------------

    def _pending(self, conn: Connection, plugin_id: str) -> list[str]:
        """The ids of the plugin's ``finish`` migrations still pending (none where nothing runs after COMMIT)."""
        if self.dialect.invalid_indexes_sql(plugin_id) is None:
            return []
        m = self.registry.migrations
        query = sa.select(m.c.migration_id).where(
            m.c.plugin_id == plugin_id, m.c.kind == MigrationKind.FINISH, m.c.status == MigrationStatus.PENDING
        )
        return list(conn.execute(query.order_by(m.c.migration_id)).scalars())

    def _finish(self, plugin_id: str, migration_id: str) -> None:
        """Build the plugin's pending ``after`` statements (those of *migration_id*, and any earlier)."""
        try:
            self._retrying(lambda: self._build(plugin_id))
        except ProblemError as error:
            raise _unfinished(plugin_id, migration_id, error) from error

    def _build(self, plugin_id: str) -> None:
        """On one connection outside any transaction, holding the plugin's lock for the session: read
        the pending ``finish`` migrations, drop the INVALID indexes failed builds left, run their
        statements, check that no index of the plugin is left invalid, and mark them executed.

        Not the migration's own transaction: a concurrent build waits for every transaction holding
        a snapshot, so a transaction kept open for the lock would wait for itself.
        """
        key = lock_key(plugin_id)
        invalid = self.dialect.invalid_indexes_sql(plugin_id)
        assert invalid is not None
        m = self.registry.migrations
        driver_error: type[Exception] = self.sa_engine.dialect.dbapi.Error  # type: ignore[union-attr]
        try:
            with self.sa_engine.connect() as conn:
                try:
                    autocommit = conn.execution_options(isolation_level="AUTOCOMMIT")
                    self.database.execute(autocommit, self.dialect.concurrent_session(key, self.lock_timeout_ms))
                    pending = (
                        m.c.plugin_id == plugin_id,
                        m.c.kind == MigrationKind.FINISH,
                        m.c.status == MigrationStatus.PENDING,
                    )
                    rows = autocommit.execute(sa.select(m).where(*pending).order_by(m.c.migration_id)).all()
                    readable: list[tuple[list[str], list[str]]] = self.registry.guarded(
                        autocommit, plugin_id, lambda: [statements_of(row) for row in rows]
                    )
                    leftovers = [str(r[0]) for r in autocommit.exec_driver_sql(invalid)]
                    self.database.execute(autocommit, [*leftovers, *(s for ran, _ in readable for s in ran)])
                    building = self.dialect.invalid_indexes_sql(plugin_id, building=True)
                    unfinished = [str(r[0]) for r in autocommit.exec_driver_sql(building or invalid)]
                    if unfinished:
                        raise ProblemError.one(
                            "ES403",
                            "database",
                            f"another session is still building an index of plugin {plugin_id!r} "
                            f"({unfinished[0].rsplit(' ', 1)[-1]}); try again once it is done",
                            kind="retryable",
                        )
                    done = sa.update(m).where(*pending).values(status=MigrationStatus.EXECUTED, updated_at=now())
                    autocommit.execute(done)
                finally:
                    # The session's lock and settings go with the connection, which is not reused.
                    conn.invalidate()
        except (sa.exc.DBAPIError, OSError, driver_error) as error:
            raise self.database.problem(error) from error

    # --- apply --------------------------------------------------------------------------------

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
        step = _Apply(self, owner, spec, plan, base_checksum, tables)
        try:
            return self._migrate(spec.plugin_id, step, self.dialect.needs_foreign_keys_off(plan))
        except ProblemError as problem:
            if step.rendered is not None and not step.committed and problem.kind in ("database", "retryable"):
                self._record_failure(step, problem)
            raise

    def _record_failure(self, step: _Apply, problem: ProblemError) -> None:
        assert step.rendered is not None
        message = problem.problems[0].message
        plugin_id = step.spec.plugin_id
        with contextlib.suppress(ProblemError), self.database.transaction() as conn:
            self._lock(conn, plugin_id)
            failed_id = self.registry.next_migration_id(conn, plugin_id)
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
            self.registry.record(conn, row)
            self.registry.mark_failed(conn, plugin_id, message)

    # --- rollback -----------------------------------------------------------------------------

    def rollback(self, plugin_id: str, expected: RollbackPlan | None = None) -> ApplyResult:
        """Undo the plugin's latest executed migration with its recorded rollback SQL.

        With *expected* (what the approval gate reviewed), raises :class:`StalePlan` when the
        registration or the migration to undo changed since.
        """
        if self.registration(plugin_id) is None:  # refused without creating a registry
            raise _not_registered(plugin_id)
        return self._migrate(plugin_id, _Rollback(self, plugin_id, expected))

    def rollback_plan(self, plugin_id: str) -> RollbackPlan | None:
        """What :meth:`rollback` would change, read without the lock (the engine checks it again under
        it); None when there is nothing to roll back (:meth:`rollback` says why)."""
        with self.registry.reading() as conn:
            base = None if conn is None else self.registry.registration(plugin_id, conn)
            if conn is None or base is None:
                return None
            built = settled_lineage(plugin_id, self.registry.history_rows(conn, plugin_id))
            if not built:
                return None
            spec = None
            if len(built) > 1:
                definition = self.registry.migration_row(conn, plugin_id, built[-2].migration_id).schema_definition
                spec = self.registry.guarded(conn, plugin_id, lambda: ExtensionSchemaSpec.model_validate(definition))
                self._refuse_if_referenced(conn, plugin_id, spec)  # no approval makes that rollback possible
            else:
                self._refuse_if_dependents(conn, plugin_id)
            migration_id = built[-1].migration_id
            row = self.registry.migration_row(conn, plugin_id, migration_id)
            _, statements = self.registry.guarded(conn, plugin_id, lambda: statements_of(row))
            target = self.registry.guarded(
                conn, plugin_id, lambda: ExtensionSchemaSpec.model_validate(row.schema_definition)
            )
            # What the recorded rollback runs first: the rollbackSql of the raw steps the migration ran.
            steps = Plan(plugin_id, tuple(rawsql.undone(spec, target)))
            registered = [r.spec for r in self.registry.registrations(conn)]
            refs = catalog.reference_types(self.database, registered, [base.spec] + ([spec] if spec else []))
            if spec is None:
                plan = Plan(plugin_id, (*steps.ops, *planning.teardown(base.spec, refs).ops))
            else:
                try:
                    plan = Plan(plugin_id, (*steps.ops, *planning.plan(base.spec, spec, refs).ops))
                except ProblemError:  # this planner cannot go back directly: the reverse of the way there
                    forward = _undone(self, conn, spec, target)
                    plan = forward.reverse() if forward is not None else steps
            backups = self.dialect.rollback_sql_backups(steps, _sql_backup_tag(migration_id))
            return RollbackPlan(base, migration_id, spec, plan, tuple(statements), tuple(backups))

    def _refuse_if_dependents(self, conn: Connection, plugin_id: str) -> None:
        dependents = sorted(r.plugin_id for r in self.registry.dependents(conn, plugin_id))
        if dependents:
            raise ProblemError.one(
                "ES303",
                "plugin",
                f"plugin {plugin_id!r} is still needed by {', '.join(dependents)} (dependsOn); delete those first",
                kind="refused",
            )

    def _refuse_if_referenced(self, conn: Connection, plugin_id: str, kept: ExtensionSchemaSpec) -> None:
        """ES303 when going back to *kept* would drop a table another plugin's foreign keys reference
        (on SQLite the drop would otherwise delete their rows through ON DELETE CASCADE)."""
        remaining = {t.name for t in kept.tables}
        lost: dict[str, set[str]] = {}
        for dependent in self.registry.dependents(conn, plugin_id):
            fks, joins = model.resolve_relationships(dependent.spec)
            for fk in [*fks, *(end for join in joins for end in (join.left, join.right))]:
                if fk.references.plugin == plugin_id and fk.references.table not in remaining:
                    lost.setdefault(dependent.plugin_id, set()).add(fk.references.table)
        if lost:
            named = "; ".join(f"{p} references {', '.join(sorted(t))}" for p, t in sorted(lost.items()))
            raise ProblemError.one(
                "ES303",
                "plugin",
                f"rolling back plugin {plugin_id!r} to {kept.version} would drop tables other plugins use ({named}); "
                "roll back or delete those plugins first",
                kind="refused",
            )

    # --- delete -------------------------------------------------------------------------------

    def delete(
        self, plugin_id: str, teardown: Callable[[ExtensionSchemaSpec], Plan], retain: bool | None = None
    ) -> ApplyResult:
        """Remove a plugin: drop its objects (after backing up their data) or, with Retain, only
        unregister it. Refused while another plugin depends on it.

        *teardown* plans the drop from the registered spec; like :meth:`apply`, the plan is
        rendered and run in one transaction under the plugin's lock, and :class:`StalePlan` is
        raised when the registration changed after planning.
        """
        planned_from = self.registration(plugin_id)
        if planned_from is None:
            raise _not_registered(plugin_id)
        keep = planned_from.spec.deletion_policy == "Retain" if retain is None else retain
        plan = Plan(plugin_id, ()) if keep else teardown(planned_from.spec)
        return self._migrate(
            plugin_id, _Delete(self, planned_from, plan, keep), self.dialect.needs_foreign_keys_off(plan)
        )

    def repair(self, plugin_id: str) -> list[str]:
        """Re-record the checksums of a plugin's migrations (after a deliberate edit)."""
        with self.registry.reading() as conn:
            if conn is None:  # no registry: nothing was ever recorded, nothing to repair
                return []
        with self.database.transaction() as conn:
            self._lock(conn, plugin_id)
            return self.registry.repair(conn, plugin_id)


def id_floors(engine: Engine, conn: Connection, plan: Plan) -> dict[str, int]:
    """For each table *plan* creates, the floor its ids start above (:func:`table_id_floors`)."""
    created = {op.table.name for op in plan.ops if isinstance(op, planning.CreateTable)}
    return table_id_floors(engine, conn, plan.plugin_id, created)


def table_id_floors(engine: Engine, conn: Connection, plugin_id: str, tables: Collection[str]) -> dict[str, int]:
    """For each of *tables* (logical names) of *plugin_id* created again — added again, re-created
    by ``drift --repair`` or by a rollback of its drop — the highest id a backup of a table of that
    name holds or had handed out when it was dropped (its recorded id counter: rows deleted before
    the drop count too). The table starts above it, so an id never names two rows and a restore of
    those backups can never land in a row written since."""
    if not tables:
        return {}
    inspector = sa.inspect(conn)
    floors: dict[str, int] = {}
    for record in engine.registry.backup_rows(conn, plugin_id):
        if record.source_table not in tables:
            continue
        tops = [record.id_counter]
        schema, name = physical(record.backup_table)
        if inspector.has_table(name, schema=schema):
            backup = engine.dialect.qualified(PhysicalName(schema, name))
            tops.append(conn.execute(sa.text(f"SELECT max(id) FROM {backup}")).scalar())
        for top in tops:
            if top is not None and int(top) > floors.get(record.source_table, 0):
                floors[record.source_table] = int(top)
    return floors


class _Apply(_Migration):
    def __init__(
        self,
        engine: Engine,
        owner: str,
        spec: ExtensionSchemaSpec,
        plan: Plan,
        base_checksum: str | None,
        tables: list[str],
    ) -> None:
        self.engine, self.owner, self.spec, self.plan = engine, owner, spec, plan
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
        return self.engine.dialect.before_phase(self.plan)

    def render(self, conn: Connection, history: list[MigrationRecord], migration_id: str) -> RenderedPlan:
        self.rendered = self.engine.render_plan(conn, self.plan, migration_id)
        return self.rendered

    def recorded_as(self) -> tuple[str, ExtensionSchemaSpec, Definition | None, datetime.datetime]:
        return self.owner, self.spec, self.definition, self.started

    def record(self, conn: Connection, migration_id: str, rendered: RenderedPlan, duration: int) -> ApplyResult:
        registry = self.engine.registry
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
        refs = self.engine.dialect.backups_of(self.plan, backup_tag(migration_id))
        registry.record_backups(conn, self.spec.plugin_id, migration_id, refs, counters=self.id_counters)
        registered = registry.registration(plugin_id, conn)
        return ApplyResult(plugin_id, True, migration_id, description, duration, rendered.warnings, registered)


class _Rollback(_Migration):
    finishes_pending = False  # the rollback drops those indexes (IF EXISTS): building them first is wasted

    def __init__(self, engine: Engine, plugin_id: str, expected: RollbackPlan | None = None) -> None:
        self.engine, self.plugin_id, self.expected = engine, plugin_id, expected
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
            raise _not_registered(self.plugin_id)
        if self.expected is not None and current.checksum != self.expected.base.checksum:
            raise StalePlan(self.plugin_id)
        self.current = current
        return None

    def render(self, conn: Connection, history: list[MigrationRecord], migration_id: str) -> RenderedPlan:
        registry = self.engine.registry
        built = settled_lineage(self.plugin_id, history)
        if not built:
            raise ProblemError.one(
                "ES305", "plugin", f"plugin {self.plugin_id!r} has no executed migration to roll back", kind="refused"
            )
        self.target = built[-1]
        if self.expected is not None and self.target.migration_id != self.expected.migration_id:
            raise StalePlan(self.plugin_id)
        if self.expected is not None:  # counted again under the lock, as an apply's (the gate read them before it)
            checks.refuse_violations(conn, self.engine.dialect, self.expected.plan)
        if len(built) == 1:
            self.engine._refuse_if_dependents(conn, self.plugin_id)
        else:
            self.previous = registry.migration_row(conn, self.plugin_id, built[-2].migration_id)
            definition = self.previous.schema_definition
            self.previous_spec = registry.guarded(
                conn, self.plugin_id, lambda: ExtensionSchemaSpec.model_validate(definition)
            )
            self.engine._refuse_if_referenced(conn, self.plugin_id, self.previous_spec)
        self.finish = next(
            (
                r
                for r in history
                if r.kind == MigrationKind.FINISH and _applied_by(r.migration_id) == self.target.migration_id
            ),
            None,
        )
        row = registry.migration_row(conn, self.plugin_id, self.target.migration_id)
        statements, rollback = registry.guarded(conn, self.plugin_id, lambda: statements_of(row))
        if self.expected is not None and tuple(rollback) != self.expected.statements:
            raise StalePlan(self.plugin_id)  # not what the gate reviewed
        target_spec = registry.guarded(
            conn, self.plugin_id, lambda: ExtensionSchemaSpec.model_validate(row.schema_definition)
        )
        # The tables the raw steps' rollbackSql names are copied whole first: what it deletes or changes is unknown.
        steps = Plan(self.plugin_id, tuple(rawsql.undone(self.previous_spec, target_spec)))
        dialect, tag = self.engine.dialect, _sql_backup_tag(self.target.migration_id)
        self.takes = [*dialect.rollback_sql_backups(steps, tag), *self._backups(conn, target_spec, " ".join(rollback))]
        self._refuse_hand_made(conn, target_spec)
        # A table the rollback creates again (undoing its drop) starts its ids above every id it had
        # handed out, as any table created again does: its restored rows' highest is not enough.
        floors = table_id_floors(self.engine, conn, self.plugin_id, self.recreated)
        resumed = [s for t, floor in sorted(floors.items()) for s in dialect.resume_ids(self.plugin_id, t, floor)]
        runs = (*dialect.backup_rollback_sql(steps, tag), *rollback, *resumed)
        return RenderedPlan(runs, tuple(statements), bool(row.foreign_keys_off))

    def _refuse_hand_made(self, conn: Connection, target_spec: ExtensionSchemaSpec) -> None:
        """ES301 when the recorded rollback SQL rebuilds a table (SQLite) that now holds a column or
        trigger the recorded spec does not know: the rebuild would drop it, like the forward path's."""
        undone = _undone(self.engine, conn, self.previous_spec, target_spec)
        found = self.engine.dialect.hand_made_problems(conn, undone.reverse()) if undone is not None else []
        if found:
            raise ProblemError(found, kind="refused")

    def _backups(self, conn: Connection, target_spec: ExtensionSchemaSpec, sql: str) -> list[BackupRef]:
        """The backups the rollback SQL fills; ES314 when one it reads (the undone migration's) is gone.

        The recorded rollback *sql* was rendered from the plan the target migration ran, planned
        again here (from the spec before it to its own) to name its backups the way the dialect
        does; only those the recorded SQL names count. A plan that cannot be made again (made by
        hand, or refused by this version's planner) names none: the rollback runs as recorded.
        """
        assert self.target is not None
        engine, migration_id = self.engine, self.target.migration_id
        specs = [s for s in (self.previous_spec, target_spec) if s is not None]
        refs = catalog.reference_types(engine.database, [r.spec for r in engine.registry.registrations(conn)], specs)
        try:
            plan = planning.plan(self.previous_spec, target_spec, refs)
        except ProblemError:
            return []
        reads, takes = engine.dialect.rollback_backups_of(plan, backup_tag(migration_id))
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
        registry = self.engine.registry
        registry.set_migration_status(conn, self.plugin_id, self.target.migration_id, MigrationStatus.ROLLED_BACK)
        if self.finish is not None:  # its indexes went with the rollback too
            registry.set_migration_status(conn, self.plugin_id, self.finish.migration_id, MigrationStatus.ROLLED_BACK)
        if self.previous_spec is None:
            registry.unregister(conn, self.plugin_id)
        else:
            # The tables of the spec gone back to: those the rollback removed are not drift.
            tables = registered_tables(self.engine.dialect, self.previous_spec)
            assert self.current is not None
            registry.register(conn, self.current.owner, self.previous_spec, tables, exists=True)
        # Listed with the migration they undid: their names carry its tag, like its own backups.
        registry.record_backups(conn, self.plugin_id, self.target.migration_id, self.takes, counters=self.id_counters)
        description = [f"rolled back migration {self.target.migration_id}"]
        return ApplyResult(self.plugin_id, True, self.target.migration_id, description, duration)


class _Delete(_Migration):
    def __init__(self, engine: Engine, planned_from: Registration, plan: Plan, keep: bool) -> None:
        self.engine, self.planned_from, self.plan, self.keep = engine, planned_from, plan, keep
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
            raise _not_registered(self.plugin_id)
        if current.checksum != self.planned_from.checksum:
            raise StalePlan(self.plugin_id)
        self.current = current
        self.engine._refuse_if_dependents(conn, self.plugin_id)
        return None

    def render(self, conn: Connection, history: list[MigrationRecord], migration_id: str) -> RenderedPlan:
        dialect = self.engine.dialect
        existing = set(catalog.plugin_tables(conn, dialect, self.plugin_id))
        plan, self.missing = without_missing_tables(self.plan, existing, dialect)
        return dialect.render_plan(plan, backup_tag=backup_tag(migration_id))

    def record(self, conn: Connection, migration_id: str, rendered: RenderedPlan, duration: int) -> ApplyResult:
        registry = self.engine.registry
        assert self.current is not None
        description = ["unregistered (tables retained)"] if self.keep else ["dropped all objects (data backed up)"]
        if self.missing:
            description.append(f"already missing (dropped outside extschema): {', '.join(self.missing)}")
        registry.record(conn, self.executed_row(migration_id, description, rendered, now(), duration))
        registry.unregister(conn, self.plugin_id)
        refs = self.engine.dialect.backups_of(self.plan, backup_tag(migration_id))
        registry.record_backups(conn, self.plugin_id, migration_id, refs, skip=self.missing, counters=self.id_counters)
        return ApplyResult(self.plugin_id, True, migration_id, description, duration)
