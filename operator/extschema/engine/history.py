"""What a plugin's migration history says it is now: the executed applies that built it.

Read by the rollback kind (the migration it undoes), by backup pruning (the backups a rollback
still reads) and by restore (the specs names are followed through), and by the rollback planning
above the engine (:func:`extschema.engine.migrator.Engine.rollback_source`).
"""

from __future__ import annotations

from extschema.engine.registry import ENDING_KINDS, MigrationKind, MigrationRecord, MigrationStatus
from extschema.problems import ProblemError


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
    # An adopt built nothing, but registered what a later apply builds on: its rollback unregisters again.
    built = (MigrationKind.APPLY, MigrationKind.ADOPT)
    return [r for r in records[ended + 1 :] if r.kind in built and r.status == MigrationStatus.EXECUTED]


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
