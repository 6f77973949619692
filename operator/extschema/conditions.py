"""Status conditions of the operator's resources: the reason catalog and how conditions change.

Pure: no Kubernetes client, no clock (the caller passes ``now``). Conditions follow the
Kubernetes convention and kstatus: ``Ready`` is always present; ``Reconciling`` and ``Stalled``
are present only while they are True. ``InSync`` (the drift check's verdict) is present only on
Ready resources, so it never contradicts ``Ready``. ``lastTransitionTime`` changes only when a
condition's status flips. ``docs/conditions.md`` documents every reason (a test keeps them equal).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from extschema import limits
from extschema.problems import ProblemError

READY, RECONCILING, STALLED, IN_SYNC = "Ready", "Reconciling", "Stalled", "InSync"
CONDITION_TYPES = (READY, RECONCILING, STALLED, IN_SYNC)
MAX_MESSAGE = limits.MAX_CONDITION_MESSAGE

#: How a reason leaves the resource: ``ready`` (done), ``reconciling`` (will proceed by itself),
#: ``stalled`` (waits for a person), ``idle`` (deliberately paused).
Phase = Literal["ready", "reconciling", "stalled", "idle"]


@dataclasses.dataclass(frozen=True)
class Reason:
    """One entry of the catalog: its phase, what it means and what to do."""

    name: str
    phase: Phase
    meaning: str
    action: str
    #: Retried on a timer with backoff (True), or left until something changes (False).
    retried: bool = False


def _catalog(*reasons: Reason) -> dict[str, Reason]:
    return {r.name: r for r in reasons}


CATALOG: dict[str, Reason] = _catalog(
    Reason(
        "Applied",
        "ready",
        "The database matches the spec: every migration of this generation has run.",
        "Nothing.",
    ),
    Reason(
        "Progressing",
        "reconciling",
        "The operator is planning or applying a migration for this generation.",
        "Wait; events show each migration started and finished.",
    ),
    Reason(
        "InvalidSpec",
        "stalled",
        "The spec breaks a rule the CRD schema cannot check; the message names the "
        "field path and the problem code (docs/errors.md).",
        "Fix the field and apply again; nothing is retried until the spec changes.",
    ),
    Reason(
        "Conflict",
        "stalled",
        "Another resource (named in the message) or the core application already "
        "claims this pluginId, a table name or another database name. The first claim keeps it.",
        "Choose another pluginId or name, or delete the other resource: this one then proceeds by itself.",
    ),
    Reason(
        "DependencyNotReady",
        "reconciling",
        "A plugin in spec.dependsOn is not applied yet.",
        "Apply the dependency; this resource proceeds by itself once the dependency is Ready.",
    ),
    Reason(
        "TargetNotFound",
        "reconciling",
        "The DatabaseTarget named in spec.targetRef, its Secret or key does "
        "not exist, or no default database was given to the operator (--database).",
        "Create the DatabaseTarget/Secret, or fix spec.targetRef; retried with backoff.",
        retried=True,
    ),
    Reason(
        "InvalidTarget",
        "stalled",
        "The database URL is not usable (unsupported scheme or malformed).",
        "Fix the URL in the DatabaseTarget or its Secret.",
    ),
    Reason(
        "DatabaseUnavailable",
        "reconciling",
        "The database cannot be reached or answered with a temporary "
        "error (SQLSTATE class 08, 40, 53, 55P03, 57P0x...).",
        "Nothing if it is transient: retried with backoff. Otherwise check the server, network and credentials.",
        retried=True,
    ),
    Reason(
        "MigrationFailed",
        "stalled",
        "The database refused the migration; it was rolled back and recorded as "
        "failed. The message is the database's own.",
        "Fix the spec (or the data that violates it) and apply again; see `extschema history PLUGIN`.",
    ),
    Reason(
        "RefusedChange",
        "stalled",
        "The change is not additive (removing or retyping a column, removing an "
        "enum value...), or the migration history's checksum does not match.",
        "Make the change additive, or create a new plugin version that migrates data explicitly.",
    ),
    Reason(
        "AdoptionRefused",
        "stalled",
        "deletionPolicy Retain (or `extschema delete --retain`) kept this plugin's objects, but they differ from "
        "the spec they were retained with (ES209: the message names each difference); nothing was changed. "
        "Objects that match it exactly are adopted: registered again, rows intact.",
        "Undo the listed changes by hand so the objects are exactly the retained version, or back up what you "
        "need and drop them, or choose another pluginId; then change the resource's spec (or re-create it).",
    ),
    Reason(
        "ApprovalRequired",
        "reconciling",
        "The plan rewrites a table or drops data and waits for an approval of exactly this plan; "
        "status.pendingPlan shows its hash, a summary, and whether it is destructive (with row counts). "
        "Waiting, not failed: nothing ran, and nothing runs until the approval matches.",
        "Review the plan (`extschema plan -o json`), then commit spec.approvedPlanHash with "
        "status.pendingPlan.hash (or use the Argo CD action `approve`).",
    ),
    Reason(
        "Suspended",
        "idle",
        "spec.suspend is true: the operator does not touch the database for this resource, also when it is "
        "deleted (deletionPolicy runs only for a resource deleted while not suspended).",
        "Set spec.suspend to false to resume; set it to false before deleting to have deletionPolicy run.",
    ),
    Reason(
        "Deleting",
        "reconciling",
        "The resource is being deleted: the plugin's objects are dropped "
        "(deletionPolicy Drop, data backed up first) or unregistered (Retain).",
        "Wait.",
    ),
    Reason(
        "DeletionBlocked",
        "stalled",
        "Other plugins depend on this one (dependsOn); deletion waits and the finalizer stays.",
        "Delete the dependent resources first; deletion then proceeds by itself.",
    ),
    Reason(
        "InternalError",
        "reconciling",
        "An unexpected error in the operator (a bug); the operator log has the traceback.",
        "Retried with backoff; report it with the log if it persists.",
        retried=True,
    ),
    Reason(
        "RolloutPaused",
        "stalled",
        "spec.targetSelector: a target failed (status.rollout.pausedAt; its entry in status.targets says why) and "
        "spec.rollout.pauseOnFailure is true: no new wave starts. Targets already migrated keep the new version.",
        "Fix the target (or the spec), then set the annotation extschema.io/resume to a new value "
        "(`kubectl annotate exts NAME extschema.io/resume=$(date +%s) --overwrite`) or change the spec.",
    ),
    Reason(
        "RolloutWaiting",
        "reconciling",
        "A target of a spec.targetSelector rollout that has not migrated to this spec yet: its wave has not "
        "started (canaries first, then waves of spec.rollout.maxParallel), or the rollout stopped before it.",
        "Wait; status.rollout says where the rollout stands.",
    ),
    Reason(
        "TargetsNotReady",
        "stalled",
        "spec.targetSelector with spec.rollout.pauseOnFailure false: the rollout went on past failed targets; "
        "the message names them, status.targets says why each failed.",
        "Fix the failed targets (or the spec); the operator retries those that failed temporarily.",
    ),
    Reason(
        "NoTargetsSelected",
        "reconciling",
        "No DatabaseTarget of the namespace matches spec.targetSelector.",
        "Label a DatabaseTarget to match (or fix the selector): it gets the plugin by itself.",
    ),
    Reason(
        "Connected",
        "ready",
        "DatabaseTarget: the operator connected; status.serverVersion is set.",
        "Nothing.",
    ),
)


def reason(name: str) -> Reason:
    return CATALOG[name]


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A reason from a catalog and a message for people (an unknown reason is a programming error)."""

    reason: str
    message: str
    #: The catalog the reason comes from, per kind of verdict.
    catalog: ClassVar[Mapping[str, object]] = {}

    def __post_init__(self) -> None:
        if self.reason not in self.catalog:
            raise ValueError(f"unknown {type(self).__name__} reason {self.reason!r}")


@dataclasses.dataclass(frozen=True)
class Outcome(Verdict):
    """Where a resource stands after one reconcile: a reason of :data:`CATALOG` and a message."""

    catalog: ClassVar[Mapping[str, object]] = CATALOG

    @property
    def phase(self) -> Phase:
        return CATALOG[self.reason].phase


def _truncate(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def _condition(
    old: Mapping[str, Any] | None,
    type_: str,
    status: str,
    reason_: str,
    message: str,
    generation: int | None,
    now: str,
) -> dict[str, Any]:
    flipped = old is None or old.get("status") != status or not old.get("lastTransitionTime")
    condition: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason_,
        "message": _truncate(message),
        "lastTransitionTime": now if flipped else old["lastTransitionTime"],  # type: ignore[index]
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    status: bool | None,
    reason_: str,
    message: str,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """The conditions with one set (added or replaced; *status* None is Unknown); others keep their order."""
    text = "Unknown" if status is None else "True" if status else "False"
    old = next((c for c in conditions if c.get("type") == type_), None)
    new = _condition(old, type_, text, reason_, message, generation, now)
    result = [dict(c) for c in conditions if c.get("type") != type_]
    index = next((i for i, c in enumerate(conditions) if c.get("type") == type_), len(result))
    result.insert(index, new)
    return result


def remove_condition(conditions: Sequence[Mapping[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [dict(c) for c in conditions if c.get("type") != type_]


def compute(
    conditions: Sequence[Mapping[str, Any]] | None, outcome: Outcome, generation: int | None, now: str
) -> list[dict[str, Any]]:
    """New conditions for *outcome*: Ready always; Reconciling/Stalled only while True."""
    result = [dict(c) for c in conditions or () if isinstance(c, Mapping)]
    phase = outcome.phase
    result = set_condition(result, READY, phase == "ready", outcome.reason, outcome.message, generation, now)
    for type_, active in ((RECONCILING, phase == "reconciling"), (STALLED, phase == "stalled")):
        if active:
            result = set_condition(result, type_, True, outcome.reason, outcome.message, generation, now)
        else:
            result = remove_condition(result, type_)
    if phase != "ready":
        result = remove_condition(result, IN_SYNC)  # drift is checked, and meaningful, only when Ready
    return _ordered(result)


def _ordered(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order = {t: i for i, t in enumerate(CONDITION_TYPES)}
    return sorted(conditions, key=lambda c: order.get(str(c.get("type")), len(order)))


def current(conditions: Sequence[Mapping[str, Any]] | None, type_: str = READY) -> Mapping[str, Any] | None:
    return next((c for c in conditions or () if isinstance(c, Mapping) and c.get("type") == type_), None)


def changed(conditions: Sequence[Mapping[str, Any]] | None, outcome: Outcome) -> bool:
    """Whether *outcome* differs from the Ready condition now (for posting events only on change)."""
    ready = current(conditions)
    return ready is None or ready.get("reason") != outcome.reason or ready.get("message") != _truncate(outcome.message)


# --- drift: the InSync condition -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SyncReason:
    """A reason of the InSync condition: its status, what it means and what to do."""

    name: str
    #: The condition's status: True, False, or None (Unknown: the check could not run).
    in_sync: bool | None
    meaning: str
    action: str


IN_SYNC_REASONS: dict[str, SyncReason] = {
    r.name: r
    for r in (
        SyncReason(
            "InSync",
            True,
            "The plugin's tables, columns, indexes and enum types in the database match the applied spec.",
            "Nothing.",
        ),
        SyncReason(
            "Drifted",
            False,
            "The database differs from the applied spec (changed outside extschema, or an SQLite table created "
            "before extschema kept Int fields within Int's range); the message lists each difference: missing, "
            "extra or changed objects, and why a repair was refused (ES309, ES301) if one was.",
            "Undo the change by hand, run `extschema drift PLUGIN` for details, or set spec.driftPolicy: Repair "
            "to have missing objects re-created and missing Int range CHECKs added (extra objects are only "
            "reported); a refused repair changed nothing: fix what its message names.",
        ),
        SyncReason(
            "Repaired",
            True,
            "The database had drifted and spec.driftPolicy is Repair: the operator re-created what was missing "
            "(recorded in the history as a repair); the message says what.",
            "Nothing; find out who changed the database (event DriftRepaired).",
        ),
        SyncReason(
            "CheckFailed",
            None,
            "The drift check could not run (the database is unreachable, or the plugin's registry row is missing "
            "or unreadable); the message says why. The last verdict no longer holds: nothing is known about drift "
            "until a check succeeds. The check is retried every --drift-interval (event DriftCheckFailed).",
            "Fix what the message names (e.g. ES306: the plugin is not registered — re-apply the resource by "
            "changing its spec, or restore the registry row); InSync is set again by the next check that runs.",
        ),
    )
}


@dataclasses.dataclass(frozen=True)
class Sync(Verdict):
    """The drift check's verdict as the InSync condition shows it: a reason of :data:`IN_SYNC_REASONS`."""

    catalog: ClassVar[Mapping[str, object]] = IN_SYNC_REASONS

    @property
    def in_sync(self) -> bool:
        """True only when the check ran and found the database matching (False also when it could not run)."""
        return IN_SYNC_REASONS[self.reason].in_sync is True

    @property
    def status(self) -> bool | None:
        """The InSync condition's status: None (Unknown) when the check could not run."""
        return IN_SYNC_REASONS[self.reason].in_sync


def sync_of(differences: Sequence[str], repaired: Sequence[str] = (), refused: Sequence[str] = ()) -> Sync:
    """The verdict after a drift check (and a repair, if one ran): *differences* are those left;
    *refused*, why the repair was refused (it changed nothing)."""
    fixed = f"repaired: {'; '.join(repaired)}" if repaired else ""
    if refused:
        fixed = f"repair refused: {'; '.join(refused)}"
    if differences:
        count = f"{len(differences)} difference{'s' if len(differences) != 1 else ''}"
        message = f"{count} from the applied spec: {'; '.join(differences)}"
        return Sync("Drifted", f"{message} ({fixed})" if fixed else message)
    if repaired:
        return Sync("Repaired", f"in sync after a repair; {fixed}")
    return Sync("InSync", "in sync: the database matches the applied spec")


def sync_failed(error: BaseException) -> Sync:
    """The verdict when the drift check could not run: Unknown, saying why (never the last verdict)."""
    why = outcome_of(error).message if isinstance(error, ProblemError) else f"{type(error).__name__}: {error}"
    return Sync("CheckFailed", f"the drift check cannot run: {why}; retried every drift interval")


def with_sync(
    conditions: Sequence[Mapping[str, Any]] | None, sync: Sync, generation: int | None, now: str
) -> list[dict[str, Any]]:
    """The conditions with InSync set to *sync*."""
    result = [dict(c) for c in conditions or () if isinstance(c, Mapping)]
    result = set_condition(result, IN_SYNC, sync.status, sync.reason, sync.message, generation, now)
    return _ordered(result)


def sync_changed(conditions: Sequence[Mapping[str, Any]] | None, sync: Sync) -> bool:
    """Whether InSync would change (reason or message): the drift check writes status only then."""
    old = current(conditions, IN_SYNC)
    return old is None or old.get("reason") != sync.reason or old.get("message") != _truncate(sync.message)


# --- problems -> reasons -------------------------------------------------------------------------

_REASON_BY_KIND = {
    "invalid": "InvalidSpec",
    "conflict": "Conflict",
    "dependency": "DependencyNotReady",
    "refused": "RefusedChange",
    "database": "MigrationFailed",
    "retryable": "DatabaseUnavailable",
    "unreachable": "DatabaseUnavailable",
    "usage": "InvalidTarget",
    "approval": "ApprovalRequired",
}


def outcome_of(error: ProblemError) -> Outcome:
    """The reason and message for a pipeline failure; the message lists every problem with its path."""
    codes = {p.code for p in error.problems}
    name = "DeletionBlocked" if "ES303" in codes else _REASON_BY_KIND.get(error.kind, "MigrationFailed")
    if "ES209" in codes:
        name = "AdoptionRefused"
    message = "; ".join(
        f"{p.path}: {p.code}: {p.message}" if p.path else f"{p.code}: {p.message}" for p in error.problems
    )
    return Outcome(name, message)


def backoff(retry: int, base: float = 1.0, cap: float = limits.RETRY_BACKOFF_CAP_S) -> float:
    """Exponential backoff for retried reasons: 1, 2, 4 ... capped."""
    return float(min(cap, base * (2 ** min(retry, 16))))
