"""The one line every driver runs: :func:`propose` → :func:`authorize` → :func:`execute`.

``extschema plan`` and ``apply``, the operator, its pending-plan lint and the admission webhook all
start from one :class:`Proposal` (snapshot once → check → plan → review → preview); only the
reporting differs (the CLI prints, the operator writes status, conditions and events). The
package's parts, each importing only those below it:

- :mod:`.pipeline`: the run (:func:`propose`, :func:`execute`, :func:`reconcile`: check, plan, apply);
- :mod:`.lifecycle`: rollback, delete, drift and its repair, restore (planned here, run by the engine);
- :mod:`.offline`: the same proposal without a database (``extschema diff``), on a stand-in SQLite;
- :mod:`.approval`: review (counts, hash, class) and the approval gate;
- :mod:`.reads`: what the shells read besides a run (backups, analysis, core tables, roles), so
  that they never import the engine's modules;
- :mod:`.snapshot` and :mod:`.events`: what a run reads once, and what its hook hears.

Loading (files, YAML, custom resources) lives in :mod:`extschema.loading`, which needs no
database; ``load``, ``Loaded`` and ``from_object`` are re-exported here for the shells.
"""

from __future__ import annotations

from extschema.loading import Loaded, from_object, load
from extschema.reconcile.approval import (
    ApprovalRequired,
    CheckedOp,
    Planned,
    Proposal,
    Reviewed,
    authorize,
    authorize_rollback,
    review,
    review_rollback,
)
from extschema.reconcile.events import (
    LockWaiting,
    MigrationEvent,
    MigrationFailed,
    MigrationFinished,
    MigrationStarted,
    OnEvent,
    PartiallyApplied,
    StepFinished,
    StepStarted,
    listening,
)
from extschema.reconcile.lifecycle import (
    DeletePlan,
    DryRun,
    authorize_delete,
    delete,
    delete_plan,
    drift,
    preview_delete,
    preview_repair,
    preview_restore,
    preview_rollback,
    repair,
    repair_history,
    repair_plan,
    restore,
    rollback,
    rollback_plan,
    with_drift,
)
from extschema.reconcile.pipeline import (
    DEFAULT_DATABASE_URL,
    Applied,
    apply_one,
    check,
    database_url,
    execute,
    lint_of,
    plan,
    plan_one,
    propose,
    recheck,
    reconcile,
    references,
)
from extschema.reconcile.reads import (
    Analysis,
    LintFinding,
    PluginRole,
    Pruning,
    analyze,
    backups,
    core_description,
    drop_role,
    ensure_role,
    parse_duration,
    plugin_view,
    prune_backups,
    redact,
    require_known,
)
from extschema.reconcile.snapshot import Snapshot, locate, reference_types

__all__ = [
    "DEFAULT_DATABASE_URL",
    "Analysis",
    "Applied",
    "ApprovalRequired",
    "CheckedOp",
    "DeletePlan",
    "DryRun",
    "LintFinding",
    "Loaded",
    "LockWaiting",
    "MigrationEvent",
    "MigrationFailed",
    "MigrationFinished",
    "MigrationStarted",
    "OnEvent",
    "PartiallyApplied",
    "Planned",
    "PluginRole",
    "Proposal",
    "Pruning",
    "Reviewed",
    "Snapshot",
    "StepFinished",
    "StepStarted",
    "analyze",
    "apply_one",
    "authorize",
    "authorize_delete",
    "authorize_rollback",
    "backups",
    "check",
    "core_description",
    "database_url",
    "delete",
    "delete_plan",
    "drift",
    "drop_role",
    "ensure_role",
    "execute",
    "from_object",
    "lint_of",
    "listening",
    "load",
    "locate",
    "parse_duration",
    "plan",
    "plan_one",
    "plugin_view",
    "preview_delete",
    "preview_repair",
    "preview_restore",
    "preview_rollback",
    "propose",
    "prune_backups",
    "recheck",
    "reconcile",
    "redact",
    "reference_types",
    "references",
    "repair",
    "repair_history",
    "repair_plan",
    "require_known",
    "restore",
    "review",
    "review_rollback",
    "rollback",
    "rollback_plan",
    "with_drift",
]
