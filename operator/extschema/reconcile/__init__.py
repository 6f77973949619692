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

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
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
        MigrationLocked,
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
        Applied,
        apply_one,
        check,
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
    from extschema.reconcile.settings import DEFAULT_DATABASE_URL, database_url
    from extschema.reconcile.snapshot import Snapshot, locate, reference_types

#: Public name -> the module defining it, imported on first use: `status` reads the registry without
#: importing planning, approval or loading (start-up is part of the CLI's interface).
_SUBMODULES = frozenset(
    {"adopt", "approval", "events", "lifecycle", "offline", "pipeline", "reads", "settings", "snapshot"}
)
_LAZY = {
    "Analysis": "extschema.reconcile.reads",
    "Applied": "extschema.reconcile.pipeline",
    "ApprovalRequired": "extschema.reconcile.approval",
    "CheckedOp": "extschema.reconcile.approval",
    "DEFAULT_DATABASE_URL": "extschema.reconcile.settings",
    "DeletePlan": "extschema.reconcile.lifecycle",
    "DryRun": "extschema.reconcile.lifecycle",
    "LintFinding": "extschema.reconcile.reads",
    "Loaded": "extschema.loading",
    "LockWaiting": "extschema.reconcile.events",
    "MigrationLocked": "extschema.reconcile.events",
    "MigrationEvent": "extschema.reconcile.events",
    "MigrationFailed": "extschema.reconcile.events",
    "MigrationFinished": "extschema.reconcile.events",
    "MigrationStarted": "extschema.reconcile.events",
    "OnEvent": "extschema.reconcile.events",
    "PartiallyApplied": "extschema.reconcile.events",
    "Planned": "extschema.reconcile.approval",
    "PluginRole": "extschema.reconcile.reads",
    "Proposal": "extschema.reconcile.approval",
    "Pruning": "extschema.reconcile.reads",
    "Reviewed": "extschema.reconcile.approval",
    "Snapshot": "extschema.reconcile.snapshot",
    "StepFinished": "extschema.reconcile.events",
    "StepStarted": "extschema.reconcile.events",
    "analyze": "extschema.reconcile.reads",
    "apply_one": "extschema.reconcile.pipeline",
    "authorize": "extschema.reconcile.approval",
    "authorize_delete": "extschema.reconcile.lifecycle",
    "authorize_rollback": "extschema.reconcile.approval",
    "backups": "extschema.reconcile.reads",
    "check": "extschema.reconcile.pipeline",
    "core_description": "extschema.reconcile.reads",
    "database_url": "extschema.reconcile.settings",
    "delete": "extschema.reconcile.lifecycle",
    "delete_plan": "extschema.reconcile.lifecycle",
    "drift": "extschema.reconcile.lifecycle",
    "drop_role": "extschema.reconcile.reads",
    "ensure_role": "extschema.reconcile.reads",
    "execute": "extschema.reconcile.pipeline",
    "from_object": "extschema.loading",
    "lint_of": "extschema.reconcile.pipeline",
    "listening": "extschema.reconcile.events",
    "load": "extschema.loading",
    "locate": "extschema.reconcile.snapshot",
    "parse_duration": "extschema.reconcile.reads",
    "plan": "extschema.reconcile.pipeline",
    "plan_one": "extschema.reconcile.pipeline",
    "plugin_view": "extschema.reconcile.reads",
    "preview_delete": "extschema.reconcile.lifecycle",
    "preview_repair": "extschema.reconcile.lifecycle",
    "preview_restore": "extschema.reconcile.lifecycle",
    "preview_rollback": "extschema.reconcile.lifecycle",
    "propose": "extschema.reconcile.pipeline",
    "prune_backups": "extschema.reconcile.reads",
    "recheck": "extschema.reconcile.pipeline",
    "reconcile": "extschema.reconcile.pipeline",
    "redact": "extschema.reconcile.reads",
    "reference_types": "extschema.reconcile.snapshot",
    "references": "extschema.reconcile.pipeline",
    "repair": "extschema.reconcile.lifecycle",
    "repair_history": "extschema.reconcile.lifecycle",
    "repair_plan": "extschema.reconcile.lifecycle",
    "require_known": "extschema.reconcile.reads",
    "restore": "extschema.reconcile.lifecycle",
    "review": "extschema.reconcile.approval",
    "review_rollback": "extschema.reconcile.approval",
    "rollback": "extschema.reconcile.lifecycle",
    "rollback_plan": "extschema.reconcile.lifecycle",
    "with_drift": "extschema.reconcile.lifecycle",
}

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
    "MigrationLocked",
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


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'extschema.reconcile' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
