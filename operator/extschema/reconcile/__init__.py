"""The one line both shells drive: snapshot once → check → plan → gate → approve → apply.

``extschema apply`` and the operator run the same steps; only the reporting differs (the CLI
prints, the operator writes status, conditions and events). The package's parts, each importing
only those below it:

- :mod:`.pipeline`: the run (check, plan, apply, :func:`reconcile`);
- :mod:`.lifecycle`: rollback, delete, drift;
- :mod:`.approval`: review (counts, hash, class) and the approval gate;
- :mod:`.snapshot` and :mod:`.events`: what a run reads once, and what its hook hears.

Loading (files, YAML, custom resources) lives in :mod:`extschema.loading`, which needs no
database; ``load``, ``Loaded`` and ``from_object`` are re-exported here for the shells.
"""

from __future__ import annotations

from extschema.loading import Loaded, from_object, load
from extschema.reconcile.approval import (
    ApprovalRequired,
    CheckedOp,
    PendingPlan,
    Planned,
    Reviewed,
    authorize,
    authorize_rollback,
    review,
    review_all,
    review_rollback,
)
from extschema.reconcile.events import MigrationEvent, MigrationFailed, MigrationFinished, MigrationStarted, OnEvent
from extschema.reconcile.lifecycle import delete, drift, rollback, with_drift
from extschema.reconcile.pipeline import (
    DEFAULT_DATABASE_URL,
    apply_all,
    apply_one,
    check,
    database_url,
    gate,
    plan_all,
    plan_one,
    reconcile,
)
from extschema.reconcile.snapshot import Snapshot, locate, reference_types

__all__ = [
    "DEFAULT_DATABASE_URL",
    "ApprovalRequired",
    "CheckedOp",
    "Loaded",
    "MigrationEvent",
    "MigrationFailed",
    "MigrationFinished",
    "MigrationStarted",
    "OnEvent",
    "PendingPlan",
    "Planned",
    "Reviewed",
    "Snapshot",
    "apply_all",
    "apply_one",
    "authorize",
    "authorize_rollback",
    "check",
    "database_url",
    "delete",
    "drift",
    "from_object",
    "gate",
    "load",
    "locate",
    "plan_all",
    "plan_one",
    "reconcile",
    "reference_types",
    "review",
    "review_all",
    "review_rollback",
    "rollback",
    "with_drift",
]
