"""The blocking database work of the handlers, run in worker threads (``asyncio.to_thread``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from extschema import conflicts, limits, reconcile
from extschema.controller.metrics import Metrics
from extschema.engine import ApplyResult, Difference, Engine
from extschema.problems import Kind, Problem, ProblemError


class Superseded(ProblemError):
    """The resource was changed or deleted after the body being applied was read: its migration was
    abandoned under the plugin's lock before it changed anything. The newer body's own event applies it;
    without this an operator holding an old body (a second instance, a slow start) would migrate the
    database back to the old spec after the new one was applied."""

    def __init__(self, message: str) -> None:
        super().__init__([Problem("ES422", "metadata.generation", message)], Kind.RETRYABLE)


def confirming(
    loop: asyncio.AbstractEventLoop,
    read: Callable[[], Coroutine[Any, Any, Mapping[str, Any] | None]],
    generation: int,
) -> Callable[[], None]:
    """A *confirm* for :func:`apply` (run in its worker thread): the resource, read again through *read* on
    the operator's event loop *loop*, must still be at *generation* and not being deleted."""

    def confirm() -> None:
        try:
            body = asyncio.run_coroutine_threadsafe(read(), loop).result(timeout=limits.CONFIRM_TIMEOUT_S)
        except Exception as error:  # fail closed: nothing runs that could not be confirmed
            why = str(error) or type(error).__name__
            message = f"the Kubernetes API did not answer when the migration was about to start ({why}); retried"
            raise ProblemError.one("ES423", "metadata.generation", message, Kind.RETRYABLE) from error
        meta = (body or {}).get("metadata") or {}
        now = int(meta.get("generation") or 0)
        if body is None or meta.get("deletionTimestamp"):
            raise Superseded(f"the resource is being deleted: generation {generation} was not applied")
        if now != generation:
            raise Superseded(f"generation {now} replaced generation {generation} before it was applied")

    return confirm


def apply(
    engine: Engine,
    loaded: reconcile.Loaded,
    peers: list[conflicts.Claim],
    started: Callable[[], None],
    metrics: Metrics | None = None,
    confirm: Callable[[], None] | None = None,
) -> reconcile.Applied:
    """The pipeline (conflicts → dependencies → plan → approval → apply); its result carries the
    registration the migration left (or found, with nothing to do).

    *started* is called when a migration begins that changes this resource's plugin (for the
    MigrationStarted event), not for a re-apply that finds nothing to do. *metrics* time the run and
    count its migration events. *confirm* runs under the migration's lock before anything changes and
    raises (:class:`Superseded`) to abandon it.
    """
    metrics = metrics or Metrics()

    def progress(event: reconcile.MigrationEvent) -> None:
        if isinstance(event, reconcile.MigrationLocked):
            if confirm is not None:
                confirm()
            return
        metrics.migration(event)
        if isinstance(event, reconcile.MigrationStarted) and event.changes:
            started()

    with metrics.reconciling():
        (result,) = reconcile.reconcile(engine, [loaded], progress, peers)
    return result


def delete(engine: Engine, plugin_id: str, owner: str, retain: bool) -> ApplyResult | None:
    """Drop or unregister the plugin if *owner* owns it; None when it does not."""
    registration = engine.registration(plugin_id)
    if registration is None or registration.owner != owner:
        return None  # never applied, or a conflict loser: drops nothing
    try:
        return reconcile.delete(engine, plugin_id, retain)
    except ProblemError as error:
        if {p.code for p in error.problems} == {"ES306"}:
            return None  # already gone (another run finished it)
        raise


def ping(engine: Engine) -> tuple[str, str]:
    """The backend name and the server's version."""
    return engine.backend, engine.ping()


def lint(engine: Engine, waiting: reconcile.ApprovalRequired, plugin_id: str) -> list[reconcile.LintFinding]:
    """squawk's findings about the SQL of the plan *plugin_id* waits with (none on SQLite).

    Only for status.pendingPlan: the plan is the one the run proposed (*waiting* carries it), never
    planned a second time.
    """
    item = waiting.proposal.item(plugin_id) if waiting.proposal is not None else None
    return [] if item is None else reconcile.lint_of(engine, item)


def drift(engine: Engine, plugin_id: str, repair: bool) -> tuple[list[str], list[str], list[str]]:
    """How the plugin's objects differ from its applied spec, after re-creating what is missing if *repair*.

    Returns the differences left (one line each), what the repair re-created, and why the repair
    was refused (``ES309: …``: rows break a rule it would add; nothing was changed), for InSync to say.
    """
    report = reconcile.drift(engine, plugin_id)[0]
    repaired: list[str] = []
    refused: list[str] = []
    if repair and any(d.kind != "extra" for d in report.differences):  # extra objects are only reported
        try:
            repaired = reconcile.repair(engine, plugin_id)
        except ProblemError as error:
            if error.kind != Kind.REFUSED:
                raise
            refused = [f"{p.code}: {p.message}" for p in error.problems]
        report = reconcile.drift(engine, plugin_id)[0]
    return [_difference(d) for d in report.differences], repaired, refused


def _difference(difference: Difference) -> str:
    text = f"{difference.kind} {difference.object}"
    return f"{text}: {difference.detail}" if difference.detail else text
