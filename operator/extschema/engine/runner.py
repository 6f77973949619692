"""The one migration path: every kind of migration runs through :meth:`Migrator.run`.

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
the database's message (:mod:`extschema.engine.kinds.apply`).

Each kind of migration (:mod:`extschema.engine.kinds`) is a :class:`Migration`: it only says what
it checks, what SQL it runs and how the registry changes; :meth:`Migrator.run` owns the rest. The
engine executes plans it is given and never plans: every plan a kind runs was made above it
(:mod:`extschema.reconcile`) and is checked against the registry under the lock.

Some steps cannot run in that transaction (PostgreSQL, :class:`RenderedPlan`): new enum values are
committed first in their own locked transaction (``before``, idempotent), and new indexes on
populated tables are built concurrently after COMMIT (``after``, :mod:`extschema.engine.after_phase`).
A lock timeout (another session holds the table) is retried a few times with jittered backoff.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import random
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import NoReturn, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from extschema import limits, planning
from extschema.dialects import BatchFailed, Dialect, RenderedPlan, StepSpan
from extschema.engine import after_phase, checks, progress
from extschema.engine.after_phase import AfterPhase
from extschema.engine.connection import Database, lock_key
from extschema.engine.registry import (
    Definition,
    MigrationKind,
    MigrationRecord,
    MigrationRow,
    MigrationStatus,
    Registration,
    Registry,
    now,
    physical,
)
from extschema.model import ExtensionSchemaSpec
from extschema.naming import PhysicalName, backup_tag
from extschema.planning import Plan
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
    #: The SQL it ran, where the command shows it (a rollback's); else empty.
    statements: tuple[str, ...] = ()
    #: The after phase the migration ran once committed (None: it had none).
    after: AfterPhase | None = None


@dataclasses.dataclass(frozen=True)
class Preview:
    """What :meth:`Migrator.run` would do for a migration, read and rendered without running it (``--dry-run``)."""

    plugin_id: str
    #: The id the migration would be recorded with; None when it has nothing to do.
    migration_id: str | None
    #: The SQL it would run, in order (empty when nothing to do).
    statements: tuple[str, ...]
    #: What it would change, one line each, as its result would say.
    description: list[str]


class StepFailed(ProblemError):
    """A statement of a migration's step failed: the problem names the step (*step*, number of *total*)."""

    def __init__(self, error: ProblemError, step: StepSpan, number: int, total: int) -> None:
        first, *rest = error.problems
        named = dataclasses.replace(
            first, message=f"step {number}/{total} ({step.description}) failed: {first.message}"
        )
        super().__init__([named, *rest], error.kind)
        self.step, self.number, self.total = step, number, total


class StalePlan(Exception):
    """The registry moved between planning and locking: plan again."""


def not_registered(plugin_id: str) -> ProblemError:
    """ES306: *plugin_id* has no registration to roll back, delete, repair or restore into."""
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


class Migration(Protocol):
    """What one kind of migration decides; :meth:`Migrator.run` runs it under the plugin's lock.

    :class:`MigrationBase` gives the defaults and the state the runner keeps on it.
    """

    #: The registration as read under the lock (set by :meth:`check` where one is required).
    current: Registration | None
    #: What :meth:`render` returned, once it ran.
    rendered: RenderedPlan | None
    #: Whether the main transaction committed (a failure after it leaves the migration applied).
    committed: bool
    #: The plugin's tables' id counters, read just before the migration's statements run (a table
    #: it drops takes its counter along): recorded with its whole-table backups.
    id_counters: dict[str, int]

    @property
    def kind(self) -> MigrationKind:
        """The kind its history row is recorded with."""
        ...

    @property
    def finishes_pending(self) -> bool:
        """A pending ``finish`` of an earlier apply is built first (True), or cancelled (False: the
        migration undoes or drops what it would build)."""
        ...

    def before(self) -> list[str]:
        """Statements committed on their own before the main transaction (idempotent)."""
        ...

    def check(self, conn: Connection, current: Registration | None) -> ApplyResult | None:
        """Refuse (raise), raise :class:`StalePlan` when what it was given was planned from another
        registration, or return a result when there is nothing to do; before the history is verified."""
        ...

    def render(self, conn: Connection, history: list[MigrationRecord], migration_id: str) -> RenderedPlan:
        """The statements it runs (and their rollback), read under the lock."""
        ...

    def record(self, conn: Connection, migration_id: str, rendered: RenderedPlan, duration: int) -> ApplyResult:
        """Change the registry in the migration's own transaction."""
        ...

    def preview_lines(self, migration_id: str) -> list[str]:
        """What it would change, once rendered for a dry run (:meth:`Migrator.preview`)."""
        ...

    def recorded_as(self) -> tuple[str, ExtensionSchemaSpec, Definition | None, datetime.datetime]:
        """The owner and spec its ``finish`` migration is recorded with, the spec's definition if made,
        and when the migration started."""
        ...


class MigrationBase:
    """The defaults of a :class:`Migration`, and the state :meth:`Migrator.run` keeps on it."""

    kind: MigrationKind = MigrationKind.APPLY
    current: Registration | None = None
    rendered: RenderedPlan | None = None
    committed = False
    finishes_pending = True
    id_counters: dict[str, int] = {}

    def before(self) -> list[str]:
        return []

    def preview_lines(self, migration_id: str) -> list[str]:
        return []

    def recorded_as(self) -> tuple[str, ExtensionSchemaSpec, Definition | None, datetime.datetime]:
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


class Migrator:
    """Runs :class:`Migration` s against one database: the lock, the transaction, the retries, the after phase."""

    def __init__(
        self,
        database: Database,
        registry: Registry,
        lock_timeout_ms: int,
        statement_timeout_ms: int,
        lock_timeout_setting: str = "the lock timeout",
    ) -> None:
        self.database, self.registry = database, registry
        self.dialect: Dialect = database.dialect
        self.sa_engine = database.sa_engine
        self.lock_timeout_ms = lock_timeout_ms
        self.statement_timeout_ms = statement_timeout_ms
        #: What a user raises to wait longer (``--lock-timeout``, ``spec.lockTimeout``): ES403 names it.
        self.lock_timeout_setting = lock_timeout_setting

    def lock(self, conn: Connection, plugin_id: str) -> None:
        """Take the plugin's migration lock in *conn*'s transaction, then set its timeouts (in that order:
        the wait for the lock must not time out)."""
        progress.session_begun(self.dialect, conn)
        preamble = self.dialect.migration_preamble(lock_key(plugin_id), self.lock_timeout_ms, self.statement_timeout_ms)
        try:
            self.database.execute_batch(conn, preamble)  # in order, in one round trip where it can
        except BatchFailed as failed:
            raise failed.error from None

    def run(self, plugin_id: str, migration: Migration, foreign_keys_off: bool = False) -> ApplyResult:
        """[before] → lock → check → verify → render → execute → record → [after].

        The middle runs in one transaction; each part is retried on a lock timeout. A pending
        ``after`` phase of an earlier apply is finished (or cancelled) first.
        """
        self.registry.ensure()
        clock = time.perf_counter()
        before = migration.before()
        if before:
            done = self.retrying(lambda: self._before(plugin_id, migration, before), plugin_id)
            if done is not None:
                return done
        for _ in range(after_phase.PENDING_ROUNDS):
            try:
                result = self.retrying(lambda: self._main(plugin_id, migration, foreign_keys_off, clock), plugin_id)
                break
            except after_phase.PendingFinish as pending:
                after_phase.finish(self, plugin_id, pending.applied)
        else:
            raise ProblemError.one(
                "ES403", "database", f"plugin {plugin_id!r} kept changing while it was being migrated; try again",
                kind="retryable",
            )  # fmt: skip
        migration.committed = True
        if migration.rendered is not None and migration.rendered.after and result.migration_id is not None:
            built = after_phase.finish(self, plugin_id, result.migration_id)
            if built is not None:
                result = dataclasses.replace(result, after=built)
        return result

    def preview(self, plugin_id: str, migration: Migration) -> Preview:
        """What :meth:`run` would do: *migration* checked and rendered in a read-only transaction,
        without the lock, executing and recording nothing (a dry run creates no registry either)."""
        with self.registry.reading() as conn:
            if conn is None:
                raise not_registered(plugin_id)
            done = migration.check(conn, self.registry.registration(plugin_id, conn))
            if done is not None:
                return Preview(plugin_id, None, (), list(done.description))
            history = self.registry.verify_history(conn, plugin_id)
            migration_id = self.registry.next_migration_id(conn, plugin_id, history)
            rendered = migration.rendered = migration.render(conn, history, migration_id)
            return Preview(plugin_id, migration_id, rendered.all_statements, migration.preview_lines(migration_id))

    def _before(self, plugin_id: str, migration: Migration, before: Sequence[str]) -> ApplyResult | None:
        """Commit *before* under the plugin's lock, unless the migration has nothing to do or is stale."""
        with self.database.transaction() as conn:
            self.lock(conn, plugin_id)
            done = migration.check(conn, self.registry.registration(plugin_id, conn))
            if done is None:
                span = StepSpan("new enum values, committed before the migration", len(before))
                self.execute_steps(conn, plugin_id, "", before, (span,), phase="before")
            return done

    def _main(self, plugin_id: str, migration: Migration, foreign_keys_off: bool, clock: float) -> ApplyResult:
        fk_off = foreign_keys_off or self.dialect.migrations_without_foreign_keys
        with self.database.transaction(fk_off) as conn:
            self.lock(conn, plugin_id)
            pending = after_phase.pending(self, conn, plugin_id)
            if pending and migration.finishes_pending:
                raise after_phase.PendingFinish(after_phase.applied_by(pending[0]))
            for migration_id in pending:  # cancelled: this migration drops what they would build
                self.registry.set_migration_status(conn, plugin_id, migration_id, MigrationStatus.ROLLED_BACK)
            done = migration.check(conn, self.registry.registration(plugin_id, conn))
            if done is not None:
                return done
            progress.emit(progress.MigrationLocked(plugin_id))  # the caller's last word (it may raise)
            history = self.registry.verify_history(conn, plugin_id)
            migration_id = self.registry.next_migration_id(conn, plugin_id, history)
            rendered = migration.rendered = migration.render(conn, history, migration_id)
            migration.id_counters = self.dialect.id_counters(conn, plugin_id)
            whole = (StepSpan(str(migration.kind), len(rendered.statements)),) if rendered.statements else ()
            steps = rendered.spans or whole
            self.execute_steps(
                conn, plugin_id, migration_id, rendered.statements, steps, rendered.foreign_keys_off or fk_off
            )
            result = migration.record(conn, migration_id, rendered, int((time.perf_counter() - clock) * 1000))
            if rendered.after:  # whatever the kind: run() builds it after COMMIT, from this record
                after_phase.record_finish(self.registry, conn, plugin_id, migration_id, migration, rendered.after)
            return result

    def execute_steps(
        self,
        conn: Connection,
        plugin_id: str,
        migration_id: str,
        statements: Sequence[str],
        steps: Sequence[StepSpan],
        foreign_keys_off: bool = False,
        phase: str = "main",
    ) -> None:
        """Run *statements* in *conn* step by step (*steps* cover them in order), each reported as it
        starts and ends (:mod:`.progress`); a failing statement raises :class:`StepFailed` naming its step.

        In the main phase, statements of steps that neither copy rows nor run a person's SQL go to the
        server in batches of up to :attr:`Dialect.batch_statements` (one round trip each, still in the
        one transaction); the database names the statement of a batch that failed, and so its step.
        Steps that copy rows or run raw SQL go statement by statement, their rows counted first when
        asked. Events stay in order: a step of a batch is reported started when the batch is sent (its
        first) or when the statements before it are known to have run."""
        if sum(step.statements for step in steps) != len(statements):  # a renderer that merged steps
            steps = (StepSpan(f"{len(statements)} statements", len(statements)),)
        heard = progress.listener()
        tracker = _StepTracker(self, conn, plugin_id, migration_id, steps, phase, heard)
        limit = self.dialect.batch_statements if phase == "main" else 1
        for begin, end in _batches(steps, limit):
            tracker.reach(begin)
            clock = time.perf_counter()
            try:
                self.database.execute_batch(conn, statements[begin:end])
            except BatchFailed as failed:
                tracker.ran(begin + failed.index, time.perf_counter() - clock, begin)
                tracker.reach(begin + failed.index)
                self._step_failed(failed.error, tracker)
            except (sa.exc.DBAPIError, OSError, self.sa_engine.dialect.dbapi.Error) as error:  # type: ignore[union-attr]
                self._step_failed(error, tracker)  # no statement named (the connection broke): the batch's first
            tracker.ran(end, time.perf_counter() - clock, begin)
        tracker.ran(len(statements), 0.0, len(statements))  # steps of no statement at the end
        if foreign_keys_off:
            self.database.execute(conn, (), foreign_keys_off)  # the dialect's checks after the whole run

    def _step_failed(self, error: BaseException, tracker: _StepTracker) -> NoReturn:
        driver_errors = (sa.exc.DBAPIError, OSError, self.sa_engine.dialect.dbapi.Error)  # type: ignore[union-attr]
        # Classified as the transaction classifies it; a lock timeout stays retryable as it was.
        if not isinstance(error, driver_errors) or self.dialect.lock_conflict(error):
            raise error
        step, number = tracker.current()
        raise StepFailed(self.database.problem(error), step, number, len(tracker.steps)) from error

    def _count_rows(self, conn: Connection, plugin_id: str, tables: Sequence[str]) -> int | None:
        """The rows of *tables* (logical names), in a savepoint: a table the plan renamed before is skipped."""
        total = 0
        for table in tables:
            try:
                with conn.begin_nested():
                    found = conn.exec_driver_sql(f"SELECT count(*) FROM {self.dialect.table_ref(plugin_id, table)}")
                    total += int(found.scalar() or 0)
            except sa.exc.DBAPIError:
                continue
        return total if tables else None

    def render_plan(self, conn: Connection, plan: Plan, migration_id: str) -> RenderedPlan:
        """Render *plan* for the migration *migration_id*, read under its lock: refused (ES301) when it
        would destroy what was made outside extschema; new indexes of tables holding rows built after
        COMMIT, concurrently (the ``after`` phase :meth:`_main` records and :meth:`run` runs); a
        table it creates starts its ids above every id a backup of it holds (:meth:`table_id_floors`)."""
        dialect, plugin_id = self.dialect, plan.plugin_id
        # The approver's counts were read before the lock: rows written since break no narrowed field.
        checks.refuse_violations(conn, dialect, plan)
        candidates = dialect.concurrent_candidates(plan)
        populated = {t for t in candidates if conn.exec_driver_sql(dialect.has_rows_sql(plugin_id, t)).scalar()}
        hand_made = dialect.hand_made_problems(conn, plan)
        if hand_made:
            raise ProblemError(hand_made, kind="refused")
        created = {op.table.name for op in plan.ops if isinstance(op, planning.CreateTable)}
        floors = self.table_id_floors(conn, plugin_id, created)
        return dialect.render_plan(plan, backup_tag(migration_id), populated, floors)

    def table_id_floors(self, conn: Connection, plugin_id: str, tables: Collection[str]) -> dict[str, int]:
        """For each of *tables* (logical names) of *plugin_id* created again — added again, re-created
        by ``drift --repair`` or by a rollback of its drop — the highest id a backup of a table of that
        name holds or had handed out when it was dropped (its recorded id counter: rows deleted before
        the drop count too). The table starts above it, so an id never names two rows and a restore of
        those backups can never land in a row written since."""
        if not tables:
            return {}
        inspector = sa.inspect(conn)
        floors: dict[str, int] = {}
        for record in self.registry.backup_rows(conn, plugin_id):
            if record.source_table not in tables:
                continue
            tops = [record.id_counter]
            schema, name = physical(record.backup_table)
            if inspector.has_table(name, schema=schema):
                backup = self.dialect.qualified(PhysicalName(schema, name))
                tops.append(conn.execute(sa.text(f"SELECT max(id) FROM {backup}")).scalar())
            for top in tops:
                if top is not None and int(top) > floors.get(record.source_table, 0):
                    floors[record.source_table] = int(top)
        return floors

    def retrying(self, step: Callable[[], _T], plugin_id: str = "") -> _T:
        """Run *step*; when it could not get a lock in time, wait a random while (full jitter,
        growing exponentially) and run it again, up to LOCK_RETRY_ATTEMPTS in all."""
        started = time.monotonic()
        waited_for: str | None = None
        notice = min(progress.LOCK_WAIT_NOTICE_S, self.lock_timeout_ms / 2000)
        reported: set[frozenset[int]] = set()
        for attempt in range(1, limits.LOCK_RETRY_ATTEMPTS + 1):
            watch = progress.LockWatch(self.dialect, self.sa_engine, plugin_id, notice, reported)
            try:
                with watch:
                    return step()
            except ProblemError as error:
                locked = self.dialect.locked(error.__cause__, self.sa_engine.url)
                if locked is not None:
                    raise ProblemError.one("ES403", "database", locked, kind="retryable") from error
                if not self.dialect.lock_conflict(error.__cause__):
                    raise
                waited_for = watch.message if watch.blockers else waited_for
                if attempt == limits.LOCK_RETRY_ATTEMPTS:
                    seconds = time.monotonic() - started
                    holders = (
                        f"{waited_for.removeprefix('waiting for ')}"
                        if waited_for
                        else "other sessions hold locks on the tables it changes"
                    )
                    raise ProblemError.one(
                        "ES403",
                        "database",
                        f"{error.problems[0].message} (gave up after {attempt} attempts in {seconds:.1f} s: "
                        f"{holders}; try again later, or raise {self.lock_timeout_setting})",
                        kind="retryable",
                    ) from error
                pause = min(limits.LOCK_RETRY_CAP_S, limits.LOCK_RETRY_BASE_S * 2 ** (attempt - 1))
                time.sleep(random.uniform(0, pause))  # jitter, not security
        raise AssertionError("unreachable")


def _batches(steps: Sequence[StepSpan], limit: int) -> Iterator[tuple[int, int]]:
    """The statements of *steps* as [begin, end) ranges of at most *limit* statements; those of a
    step that copies rows or runs raw SQL one by one (a killed client is noticed after each)."""
    begin = position = 0
    for step in steps:
        alone = limit <= 1 or bool(step.copies) or step.raw_step is not None
        if alone and position > begin:
            yield begin, position
            begin = position
        for _ in range(step.statements):
            position += 1
            if alone or position - begin >= limit:
                yield begin, position
                begin = position
    if position > begin:
        yield begin, position


class _StepTracker:
    """Emits the step events of one :meth:`Migrator.execute_steps` in order, as its statements are
    known to have run; a batch's time is shared among its statements."""

    def __init__(
        self,
        migrator: Migrator,
        conn: Connection,
        plugin_id: str,
        migration_id: str,
        steps: Sequence[StepSpan],
        phase: str,
        heard: progress.Listener | None,
    ) -> None:
        self.migrator, self.conn, self.plugin_id, self.migration_id = migrator, conn, plugin_id, migration_id
        self.steps, self.phase, self.heard = steps, phase, heard
        self.ends = list(itertools.accumulate(step.statements for step in steps))
        self.step = 0  # the step the next statement belongs to (index into steps)
        self.started = False  # whether its StepStarted was emitted
        self.rows: int | None = None
        self.seconds = 0.0  # its time so far

    def current(self) -> tuple[StepSpan, int]:
        """The step running now (or that failed), and its number."""
        return self.steps[self.step], self.step + 1

    def _event(self) -> tuple[str, str, int, int, str, int]:
        step = self.steps[self.step]
        return (self.plugin_id, self.migration_id, self.step + 1, len(self.steps), step.description, step.statements)

    def _start(self) -> None:
        if self.started or self.step >= len(self.steps):
            return
        step = self.steps[self.step]
        self.rows = None
        if self.heard and self.heard.count_rows and step.copies:
            self.rows = self.migrator._count_rows(self.conn, self.plugin_id, step.copies)
        progress.emit(progress.StepStarted(*self._event(), phase=self.phase, rows=self.rows))
        self.started, self.seconds = True, 0.0

    def reach(self, position: int) -> None:
        """The statement at *position* is about to be sent: its step has started."""
        self._skip_empty(position)
        self._start()

    def ran(self, position: int, seconds: float, begin: int) -> None:
        """The statements from *begin* up to *position* ran, in *seconds*: finish the steps they
        complete, and start the one *position* is in."""
        share = seconds / max(position - begin, 1)
        at = begin
        while self.step < len(self.steps) and self.ends[self.step] <= position:
            self._start()
            self.seconds += share * (self.ends[self.step] - at)
            at = self.ends[self.step]
            duration = int(self.seconds * 1000)
            progress.emit(progress.StepFinished(*self._event(), duration_ms=duration, phase=self.phase, rows=self.rows))
            self.step, self.started = self.step + 1, False
        self.seconds += share * max(position - at, 0)
        if self.step < len(self.steps) and self.ends[self.step] - self.steps[self.step].statements < position:
            self._start()

    def _skip_empty(self, position: int) -> None:
        """Steps of no statement before *position* start and finish at once (as they always did)."""
        while self.step < len(self.steps) and self.ends[self.step] <= position:
            self.ran(self.ends[self.step], 0.0, self.ends[self.step])
