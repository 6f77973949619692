"""How a handler ends: status fields and conditions, an event on change, then a retry or a stall.

Every outcome goes through :func:`settle`. Status is written through ``patch.fns`` (a function applied
to the freshest body, sent with a resourceVersion check), so a handler never overwrites conditions it
did not see. Retried reasons raise ``kopf.TemporaryError`` with backoff; the others return, and nothing
runs until the spec changes or the re-check loop pokes the resource.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, NoReturn

import kopf

from extschema import conditions, limits, status_model, wire
from extschema.conditions import Outcome
from extschema.controller.metrics import Metrics
from extschema.problems import ProblemError
from extschema.reconcile import Applied, ApprovalRequired
from extschema.status_model import ExtensionSchemaStatus, LastMigration

#: Bounds of status.lastMigration.changes in the CRD (see extschema.status_model).
MAX_CHANGES = limits.MAX_STATUS_CHANGES
MAX_CHANGE = limits.MAX_STATUS_CHANGE_LENGTH

Logger = logging.Logger | logging.LoggerAdapter[Any]


class Settle(Exception):
    """Raised inside a handler to end it with an outcome (see :func:`settle`)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


@dataclasses.dataclass
class Stats:
    """What the liveness probe reports."""

    last_success: str | None = None
    reconciles: int = 0
    failures: int = 0
    #: The Prometheus metrics (/metrics); every outcome is counted here, in settle.
    metrics: Metrics = dataclasses.field(default_factory=Metrics)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_fn(
    outcome: Outcome, generation: int | None, fields: Mapping[str, Any], target: str | None = None
) -> Callable[[Any], None]:
    """A ``patch.fns`` entry: set (or, for None, remove) *fields* and recompute the conditions; with
    *target* (a resource with one database), mirror them in its one ``status.targets`` entry."""

    def apply(raw: Any) -> None:
        status = raw.setdefault("status", {})
        for key, value in fields.items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = value
        stamp = now()
        status["conditions"] = conditions.compute(status.get("conditions"), outcome, generation, stamp)
        if generation is not None:
            status["observedGeneration"] = generation
        if target is not None:
            status["targets"] = [single_target(status, target, outcome, generation, stamp)]
            status["targetsReady"] = "1/1" if outcome.phase == "ready" else "0/1"
            status.pop("rollout", None)

    return apply


#: The fields of a status.targets entry that mirror the top-level ones of a resource with one database.
_MIRRORED = ("appliedVersion", "appliedChecksum", "lastMigration", "pendingPlan")


def single_target(
    status: Mapping[str, Any], name: str, outcome: Outcome, generation: int | None, stamp: str
) -> dict[str, Any]:
    """The one ``status.targets`` entry of a resource going to one database (targetRef or the default)."""
    old = next((e for e in status.get("targets") or () if isinstance(e, Mapping) and e.get("name") == name), {})
    entry: dict[str, Any] = {"name": name}
    entry.update({key: status[key] for key in _MIRRORED if status.get(key) is not None})
    entry["conditions"] = conditions.compute(old.get("conditions"), outcome, generation, stamp)
    return entry


def settle(
    body: kopf.Body,
    patch: kopf.Patch,
    outcome: Outcome,
    stats: Stats,
    *,
    retry: int = 0,
    fields: Mapping[str, Any] | None = None,
    event: str | None = None,
    target: str | None = None,
) -> None:
    """The one way a handler ends: status + conditions, an event on change, then retry or stall.

    *target*: the one database of a resource without targetSelector, shown as its status.targets entry."""
    generation = (body.get("metadata") or {}).get("generation")
    old = (body.get("status") or {}).get("conditions")
    fields = dict(fields or {})
    if outcome.reason != APPROVAL_REQUIRED:
        fields.setdefault(PENDING_PLAN, None)  # present only while a plan waits for its approval
    patch.fns.append(status_fn(outcome, generation, fields, target))
    stats.metrics.settled(body, outcome.reason, outcome.message)
    if conditions.changed(old, outcome) or event:
        normal = outcome.phase in ("ready", "idle")
        kopf.event(
            body,
            type="Normal" if normal else "Warning",
            reason=event or outcome.reason,
            message=outcome.message[: limits.MAX_EVENT_MESSAGE],
        )
    if outcome.phase == "ready":
        stats.last_success = now()
    elif outcome.phase != "idle":
        stats.failures += 1
    if conditions.reason(outcome.reason).retried:
        raise kopf.TemporaryError(outcome.message, delay=conditions.backoff(retry))
    return None


def outcome_of(error: BaseException) -> Outcome:
    """The outcome a failed handler reports: its own, the problem's, or InternalError (retried)."""
    if isinstance(error, Settle):
        return error.outcome
    if isinstance(error, ProblemError):
        return conditions.outcome_of(error)
    return Outcome("InternalError", f"unexpected {type(error).__name__}: {error}; retried with backoff")


def cleanup_waits(
    body: kopf.Body,
    patch: kopf.Patch,
    outcome: Outcome,
    stats: Stats,
    retry: int,
    logger: Logger,
    blocked_retry: float,
) -> NoReturn:
    """A cleanup that cannot finish now: report it and retry; the finalizer always stays."""
    if outcome.reason == "DeletionBlocked":
        settle(body, patch, outcome, stats, event="DeletionBlocked")
        delay = blocked_retry
    elif conditions.reason(outcome.reason).retried:
        if outcome.reason == "InternalError":
            logger.error("cleanup failed unexpectedly: %s", outcome.message)
        settle(body, patch, Outcome("Deleting", f"cleanup waits ({outcome.reason}): {outcome.message}"), stats)
        delay = conditions.backoff(retry)
    else:
        # Refused or failed in the database: a person must look; retry slowly.
        refused = Outcome(outcome.reason, f"cleanup failed: {outcome.message}")
        settle(body, patch, refused, stats, event="CleanupFailed")
        delay = limits.STALLED_RETRY_S
    raise kopf.TemporaryError(outcome.message, delay=delay)


def applied_fields(result: Applied, version: str) -> dict[str, Any]:
    """Status fields after a successful reconcile: what the registry says, and the migration if one ran.

    *result* is the run's, with the registration its migration left (or found, with nothing to do). Built
    through :class:`~extschema.status_model.ExtensionSchemaStatus`, so every field is one the CRD declares
    (lines of ``changes`` are cut to the declared bound rather than have the status patch refused).
    """
    status = ExtensionSchemaStatus()
    registration = result.registration
    if registration is not None:
        status.applied_version = registration.version
        status.applied_checksum = registration.checksum
        status.tables = list(registration.tables)
    if result.changed:
        status.last_migration = LastMigration(
            id=result.migration_id,
            version=version,
            changes=[line[:MAX_CHANGE] for line in result.description[:MAX_CHANGES]],
            duration_ms=result.duration_ms or 0,
            time=datetime.datetime.now(datetime.UTC),
        )
    fields = status.dump()
    del fields["conditions"]  # recomputed from the outcome by status_fn
    return fields


def unchanged_message(body: Mapping[str, Any], message: str) -> str:
    """An Applied resource that stays Applied keeps its message (and so posts no event)."""
    old = conditions.current((body.get("status") or {}).get("conditions"))
    if old is not None and old.get("reason") == "Applied":
        return str(old.get("message"))
    return message


# --- plans waiting for approval -------------------------------------------------------------------

APPROVAL_REQUIRED = "ApprovalRequired"
PENDING_PLAN = "pendingPlan"


def pending_of(error: BaseException, plugin_id: str) -> wire.PlanView | None:
    """The plan of *plugin_id* an ApprovalRequired error waits for (None for any other error)."""
    if not isinstance(error, ApprovalRequired):
        return None
    return next((p for p in error.pending if p.plugin_id == plugin_id), next(iter(error.pending), None))


def approved_hashes_of(spec: Mapping[str, Any]) -> frozenset[str]:
    """The hashes a raw spec approves: approvedPlanHash and approvedPlanHashes (as
    ``ExtensionSchemaSpec.approved_hashes()``, for a body not validated)."""
    given = [spec.get("approvedPlanHash"), *(spec.get("approvedPlanHashes") or ())]
    return frozenset(h for h in given if isinstance(h, str) and h)


def approval_outcome(pending: wire.PlanView, approved: Collection[str] = ()) -> Outcome:
    """ApprovalRequired, saying what to approve, and that approvals of other plans were ignored.

    *approved* is every hash the spec approves (``ExtensionSchemaSpec.approved_hashes()``:
    approvedPlanHash and approvedPlanHashes); with a targetSelector, the others may approve the
    plans of targets at another base, so they are named as approving other plans, not as wrong."""
    message = (
        f"plan {pending.hash} needs approval ({pending.op_class}): {pending.summary}; "
        f"set spec.approvedPlanHash to {pending.hash} (or add it to spec.approvedPlanHashes) "
        "to apply exactly this plan"
    )
    others = sorted(set(approved) - {pending.hash})
    if others and pending.hash not in approved:
        named = ", ".join(others)
        message = (
            f"approved {'hash' if len(others) == 1 else 'hashes'} {named} "
            f"{'is' if len(others) == 1 else 'are'} ignored here: "
            f"{'it approves' if len(others) == 1 else 'they approve'} another plan, and the current plan is "
            f"{pending.hash}. {message[0].upper()}{message[1:]}"
        )
    return Outcome(APPROVAL_REQUIRED, message)


def pending_fields(pending: wire.PlanView, findings: Iterable[wire.LintSource] = ()) -> dict[str, Any]:
    """``status.pendingPlan``: the waiting plan's view with squawk's *findings*, through the status model
    (bounded as the CRD declares)."""
    linted = pending.model_copy(update={"lint": [wire.LintView.of(f) for f in findings]})
    return {PENDING_PLAN: status_model.PendingPlan.of(linted).dump()}
