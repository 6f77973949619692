"""The after phase: index builds that cannot run in a migration's transaction (PostgreSQL's
``CREATE INDEX CONCURRENTLY``), run after COMMIT.

A migration (an apply, a drift repair) records its ``after`` statements as a ``finish`` migration
with status ``pending`` in its own transaction; building them marks it ``executed``. A migration
interrupted between the two (killed, a lock timeout, a failed build) is finished by the plugin's
next migration, before anything else, under the plugin's lock: leftover INVALID indexes are dropped
concurrently, then the builds (``IF NOT EXISTS``) run again. A rollback or a delete cancels a pending
finish instead (its rollback SQL drops those indexes ``IF EXISTS``).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from extschema.dialects import RenderedPlan, StepSpan
from extschema.engine import progress
from extschema.engine.connection import lock_key
from extschema.engine.registry import MigrationKind, MigrationRow, MigrationStatus, Registry, now
from extschema.problems import ProblemError

if TYPE_CHECKING:  # the runner imports this module
    from extschema.engine.runner import Migration, Migrator

#: How often a migration finishes pending builds and looks again before giving up (another applier
#: would have to leave new ones pending each time in between). Not a stale-plan retry (that is
#: reconcile's ``_until_fresh``, which plans again): the plan is still valid here, the engine only
#: finishes an earlier apply's ``after`` phase, which it owns, and runs the same plan.
PENDING_ROUNDS = 3


def finish_id(applied: str) -> str:
    """The id of the ``finish`` migration an apply records for its ``after`` phase: the next one."""
    return f"{int(applied) + 1:04d}"


def applied_by(finish: str) -> str:
    """The apply a ``finish`` migration belongs to: it is recorded with the next id, in the same transaction."""
    return f"{int(finish) - 1:04d}"


@dataclasses.dataclass(frozen=True)
class AfterPhase:
    """What a migration ran after its COMMIT (concurrent index builds): its ``finish`` migration."""

    migration_id: str
    description: list[str]
    duration_ms: int


class PendingFinish(Exception):
    """The plugin has a pending ``finish`` migration to build before this migration runs."""

    def __init__(self, applied: str) -> None:
        super().__init__(applied)
        self.applied = applied


def unfinished(plugin_id: str, migration_id: str, error: ProblemError) -> ProblemError:
    """The after phase failed: the migration is applied, its concurrent index builds are pending."""
    problem = error.problems[0]
    return ProblemError.one(
        problem.code,
        problem.path,
        f"migration {migration_id} of plugin {plugin_id!r} is applied, but building its indexes concurrently "
        f"failed: {problem.message}; the plugin's next apply or drift repair finishes them (or roll it back)",
        kind=error.kind,
    )


def pending(migrator: Migrator, conn: Connection, plugin_id: str) -> list[str]:
    """The ids of the plugin's ``finish`` migrations still pending (none where nothing runs after COMMIT)."""
    if migrator.dialect.invalid_indexes_sql(plugin_id) is None:
        return []
    return migrator.registry.pending_finishes(conn, plugin_id)


def record_finish(
    registry: Registry, conn: Connection, plugin_id: str, migration_id: str, migration: Migration, after: Sequence[str]
) -> None:
    """Record *after* as the ``finish`` migration of *migration_id*, pending until :func:`build` runs it."""
    owner, spec, definition, started = migration.recorded_as()
    steps = [f"after migration {migration_id}, outside its transaction: {s}" for s in after]
    row = MigrationRow(
        plugin_id=plugin_id,
        migration_id=finish_id(migration_id),
        kind=MigrationKind.FINISH,
        owner=owner,
        spec=spec,
        description=steps,
        rendered=RenderedPlan(statements=tuple(after), rollback=()),
        status=MigrationStatus.PENDING,
        started=started,
        definition=definition,
    )
    registry.record(conn, row)


def finish(migrator: Migrator, plugin_id: str, migration_id: str) -> AfterPhase | None:
    """Build the plugin's pending ``after`` statements (those of *migration_id*, and any earlier);
    what was built, and in how long (None: nothing was pending any more)."""
    try:
        return migrator.retrying(lambda: build(migrator, plugin_id), plugin_id)
    except ProblemError as error:
        raise unfinished(plugin_id, migration_id, error) from error


_INDEX_NAME = re.compile(
    r'^(?:CREATE|DROP) (?:UNIQUE )?INDEX CONCURRENTLY (?:IF (?:NOT )?EXISTS )?("(?:[^"]|"")+"(?:\."(?:[^"]|"")+")?|\S+)'
)


def step_description(statement: str) -> str:
    """One after-phase statement as a step line: the index it builds (or drops, left invalid)."""
    found = _INDEX_NAME.match(statement)
    if found is None:
        return statement
    verb = "drop invalid index" if statement.startswith("DROP") else "build index"
    return f"{verb} {found.group(1)} concurrently"


def build(migrator: Migrator, plugin_id: str) -> AfterPhase | None:
    """On one connection outside any transaction, holding the plugin's lock for the session: read
    the pending ``finish`` migrations, drop the INVALID indexes failed builds left, run their
    statements, check that no index of the plugin is left invalid, and mark them executed; what it
    built, as the latest of them (None: nothing was pending).

    Not the migration's own transaction: a concurrent build waits for every transaction holding
    a snapshot, so a transaction kept open for the lock would wait for itself.
    """
    dialect, database, registry = migrator.dialect, migrator.database, migrator.registry
    invalid = dialect.invalid_indexes_sql(plugin_id)
    assert invalid is not None
    driver_error: type[Exception] = migrator.sa_engine.dialect.dbapi.Error  # type: ignore[union-attr]
    try:
        with migrator.sa_engine.connect() as conn:
            try:
                autocommit = conn.execution_options(isolation_level="AUTOCOMMIT")
                progress.session_begun(dialect, autocommit)
                database.execute(autocommit, dialect.concurrent_session(lock_key(plugin_id), migrator.lock_timeout_ms))
                finishing = registry.pending_finishes(autocommit, plugin_id)
                statements = registry.pending_finish_statements(autocommit, plugin_id)
                leftovers = [str(r[0]) for r in autocommit.exec_driver_sql(invalid)]
                started, clock = now(), time.perf_counter()
                run = [*leftovers, *statements]
                finish = finishing[-1] if finishing else ""
                steps = [StepSpan(step_description(s), 1) for s in run]
                migrator.execute_steps(autocommit, plugin_id, finish, run, steps, phase="after")
                duration = int((time.perf_counter() - clock) * 1000)
                building = dialect.invalid_indexes_sql(plugin_id, building=True)
                left = [str(r[0]) for r in autocommit.exec_driver_sql(building or invalid)]
                if left:
                    raise ProblemError.one(
                        "ES403",
                        "database",
                        f"another session is still building an index of plugin {plugin_id!r} "
                        f"({left[0].rsplit(' ', 1)[-1]}); try again once it is done",
                        kind="retryable",
                    )
                registry.finish_pending(autocommit, plugin_id, started, duration)
                if not statements:
                    return None
                return AfterPhase(finish, [step_description(s) for s in statements], duration)
            finally:
                # The session's lock and settings go with the connection, which is not reused.
                conn.invalidate()
    except (sa.exc.DBAPIError, OSError, driver_error) as error:
        raise database.problem(error) from error
