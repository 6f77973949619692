"""What a migration reports while it runs: each step with its time, the after phase, lock waits.

The engine calls :func:`emit`; a caller hears the migrations it runs with :func:`listening`. The
listener is a context variable: each thread hears only its own migrations, also when the operator's
workers share one :class:`~extschema.engine.Engine`. The engine never prints: the CLI prints
these events (text or JSON lines on stderr), the operator may count or log them.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import sqlalchemy as sa

from extschema.dialects import Blocker

if TYPE_CHECKING:
    from extschema.dialects import Dialect

#: After how long a wait for a lock is reported (and how often it is looked at again), at most: half
#: the lock timeout when that is shorter, so that a wait is seen before it times out.
LOCK_WAIT_NOTICE_S = 1.0


@dataclasses.dataclass(frozen=True)
class StepStarted:
    """Step *number* of *total* of a migration starts. *phase*: ``before`` (committed first),
    ``main`` (the migration's transaction) or ``after`` (concurrent builds after COMMIT)."""

    plugin_id: str
    migration_id: str
    number: int
    total: int
    description: str
    statements: int
    phase: str = "main"
    #: Rows the step copies or reads in full, counted before it runs when the listener asked
    #: (``listening(count_rows=True)``); None when it copies none or they were not counted.
    rows: int | None = None


@dataclasses.dataclass(frozen=True)
class StepFinished:
    """The step of the same numbers ran, in *duration_ms*."""

    plugin_id: str
    migration_id: str
    number: int
    total: int
    description: str
    statements: int
    duration_ms: int
    phase: str = "main"
    rows: int | None = None


@dataclasses.dataclass(frozen=True)
class LockWaiting:
    """A migration of *plugin_id* has waited *waited_s* for a lock; *message* says for whom."""

    plugin_id: str
    waited_s: float
    blockers: tuple[Blocker, ...]
    message: str


@dataclasses.dataclass(frozen=True)
class MigrationLocked:
    """A migration of *plugin_id* holds its lock and has work to do; nothing has changed yet. A listener
    may raise to abandon it: the transaction rolls back and nothing is recorded (the operator checks
    here that the resource it applies was not changed or deleted since it read it)."""

    plugin_id: str


StepEvent = StepStarted | StepFinished | LockWaiting | MigrationLocked


@dataclasses.dataclass(frozen=True)
class Listener:
    hook: Callable[[StepEvent], None]
    #: Count the rows of steps that copy them before they run (a scan each: for a terminal's progress).
    count_rows: bool = False


_LISTENER: contextvars.ContextVar[Listener | None] = contextvars.ContextVar("extschema_progress", default=None)


@contextlib.contextmanager
def listening(hook: Callable[[StepEvent], None], count_rows: bool = False) -> Iterator[None]:
    """Hear the step events of the migrations this thread runs inside the block."""
    token = _LISTENER.set(Listener(hook, count_rows))
    try:
        yield
    finally:
        _LISTENER.reset(token)


def listener() -> Listener | None:
    return _LISTENER.get()


def emit(event: StepEvent) -> None:
    heard = _LISTENER.get()
    if heard is not None:
        heard.hook(event)


class LockWatch:
    """Watches one attempt of a migration for lock waits, on a thread of its own.

    The migration says which session it runs in (:meth:`session`, once its transaction began); while
    it runs, every :data:`LOCK_WAIT_NOTICE_S` the watch asks the database (on another connection)
    which sessions it waits for, reports each new set once (:class:`LockWaiting`) and keeps the last
    for the final ES403. Where sessions cannot be named (SQLite), a transaction that has not begun
    after the threshold is waiting for the database file's lock.
    """

    def __init__(
        self,
        dialect: Dialect,
        sa_engine: sa.Engine,
        plugin_id: str,
        notice_s: float = LOCK_WAIT_NOTICE_S,
        reported: set[frozenset[int]] | None = None,
    ) -> None:
        self.dialect, self.sa_engine, self.plugin_id = dialect, sa_engine, plugin_id
        self.notice_s = notice_s
        #: The sets of blocking sessions reported already (shared by the attempts of one migration).
        self.reported = reported if reported is not None else set()
        self.blockers: tuple[Blocker, ...] = ()
        self.message: str | None = None
        self._pid: int | None = None
        self._begun = False
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._heard = listener()
        self._thread = threading.Thread(target=self._watch, name=f"extschema-lockwatch-{plugin_id}", daemon=True)

    def __enter__(self) -> LockWatch:
        _WATCH.set(self)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        _WATCH.set(None)
        self._stop.set()
        self._thread.join()

    def session(self, pid: int | None) -> None:
        self._begun, self._pid = True, pid

    def _watch(self) -> None:
        while not self._stop.wait(self.notice_s):
            waited = time.monotonic() - self._started
            blockers: tuple[Blocker, ...] = ()
            if self._pid is not None:
                blockers = self._blocking(self._pid)
                if not blockers:
                    continue
                message = f"waiting for a lock held by {'; '.join(b.describe() for b in blockers)}"
            elif not self._begun:
                found = self.dialect.lock_wait(self.sa_engine.url)
                if found is None:
                    continue
                message = f"waiting: {found}"
            else:
                continue
            self.blockers, self.message = blockers, message
            pids = frozenset(b.pid for b in blockers)
            if pids in self.reported:
                continue
            self.reported.add(pids)
            if self._heard is not None:
                self._heard.hook(LockWaiting(self.plugin_id, waited, blockers, message))

    def _blocking(self, pid: int) -> tuple[Blocker, ...]:
        try:
            with self.sa_engine.connect() as conn:
                return tuple(self.dialect.blocking_sessions(conn, pid))
        except sa.exc.SQLAlchemyError:
            return ()  # the watch only informs: a failed look is no failure of the migration


_WATCH: contextvars.ContextVar[LockWatch | None] = contextvars.ContextVar("extschema_lockwatch", default=None)


def session_begun(dialect: Dialect, conn: sa.Connection) -> None:
    """The running attempt's transaction began on *conn*: its watch may look for whom it waits."""
    watch = _WATCH.get()
    if watch is not None:
        watch.session(dialect.session_pid(conn))
