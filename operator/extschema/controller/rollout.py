"""One ExtensionSchema over many databases: the reconcile and cleanup of a ``spec.targetSelector`` resource.

The targets are the DatabaseTargets of the namespace whose labels match (the ``targets`` index). Each
gets the normal pipeline (one transaction per target, the advisory lock, the stale-plan check), in the
waves :func:`extschema.rollout.plan_waves` plans: canaries first, then waves of ``maxParallel``
(bounded by a semaphore and the operator's database threads). Between two waves the resource is read
again: a newer generation (or a deletion) stops the run there, never inside a target's migration.
``status.targets[]`` holds each target's state; the Ready condition is the rollout's verdict
(:func:`extschema.rollout.summarize`). Targets no longer selected lose the plugin by deletionPolicy.

Not done per target (docs/fleet.md): the drift check and the re-check loop of waiting resources; a
selector resource re-runs when its spec, its resume annotation or a selected DatabaseTarget changes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import kopf

from extschema import conditions, limits, reconcile, status_model, wire
from extschema import rollout as plan
from extschema.conditions import Outcome
from extschema.controller import database, plugin_roles
from extschema.controller.claims import ClaimEntry, claims_on, order_of, peers_of
from extschema.controller.status import (
    Logger,
    applied_fields,
    approval_outcome,
    cleanup_waits,
    now,
    outcome_of,
    pending_of,
    settle,
)
from extschema.controller.targets import TargetEntry, indexed, selected, target_of
from extschema.model import RolloutSpec

log = logging.getLogger("extschema.operator")


@dataclasses.dataclass
class Ran:
    """One target's run: its outcome and its status.targets entry (without conditions)."""

    name: str
    outcome: Outcome
    entry: dict[str, Any]
    pending: wire.PlanView | None = None

    @property
    def state(self) -> plan.State:
        if self.outcome.reason == "Applied":
            return "ready"
        if self.outcome.reason == "ApprovalRequired":
            return "waiting"
        if self.outcome.reason == "RolloutWaiting":
            return "pending"
        return "failed"


@dataclasses.dataclass
class Fleet:
    """What one reconcile of a selector resource works with."""

    run: Any  # controller.runtime.Runtime (not imported: runtime imports the modules this one sits beside)
    body: kopf.Body
    loaded: reconcile.Loaded
    namespace: str
    claims: kopf.Index[str, ClaimEntry]
    targets: kopf.Index[Any, Any]

    @property
    def meta(self) -> Mapping[str, Any]:
        return self.body.get("metadata") or {}

    @property
    def name(self) -> str:
        return str(self.meta.get("name"))

    @property
    def generation(self) -> int:
        return int(self.meta.get("generation") or 0)

    @property
    def old_entries(self) -> dict[str, Mapping[str, Any]]:
        found = (self.body.get("status") or {}).get("targets") or []
        return {str(e["name"]): e for e in found if isinstance(e, Mapping) and e.get("name")}

    def event(self, type_: str, reason: str, message: str) -> None:
        kopf.event(self.body, type=type_, reason=reason, message=message[: limits.MAX_EVENT_MESSAGE])

    async def apply(self, entry: TargetEntry) -> Ran:
        """The pipeline on one target (one transaction); never raises."""
        spec = self.loaded.spec
        try:
            target = await target_of(self.run.api, self.namespace, entry)
            order = order_of(self.meta, self.loaded.owner)
            peers, _ = peers_of(claims_on(self.claims, target.key, entry.labels), str(self.meta.get("uid")), order)
            engine = await asyncio.to_thread(self.run.engines.get, target)
            loop = asyncio.get_running_loop()
            message = f"applying {spec.plugin_id} {spec.version} to target {entry.name}"

            def started() -> None:
                loop.call_soon_threadsafe(lambda: self.event("Normal", "MigrationStarted", message))

            confirm = database.confirming(
                loop, lambda: self.run.api.get_schema(self.namespace, self.name), self.generation
            )
            metrics = self.run.stats.metrics
            result = await asyncio.to_thread(database.apply, engine, self.loaded, peers, started, metrics, confirm)
            if target.plugin_roles:
                await plugin_roles.publish(self.run.api, engine, self.body, spec.plugin_id)
        except database.Superseded as superseded:  # the next wave sees the newer generation and stops
            return _not_run(self, entry, superseded.problems[0].message)
        except Exception as error:  # every failure is this target's outcome
            outcome = outcome_of(error)
            if outcome.reason == "InternalError":
                log.error(
                    "target %s of %s/%s failed unexpectedly", entry.name, self.namespace, self.name, exc_info=True
                )
            pending = pending_of(error, spec.plugin_id)
            kept = _kept(self.old_entries.get(entry.name))
            if pending is not None and isinstance(error, reconcile.ApprovalRequired):
                outcome = approval_outcome(pending, spec.approved_hashes())
                kept["pendingPlan"] = status_model.PendingPlan.of(pending).dump()
            elif outcome.reason == "MigrationFailed":
                self.event("Warning", "MigrationFailed", f"target {entry.name}: {outcome.message}")
            return Ran(entry.name, outcome, kept, pending)
        fields = applied_fields(result, spec.version)
        fields.pop("tables", None)
        entry_fields = {"name": entry.name, **_kept(self.old_entries.get(entry.name)), **fields}
        entry_fields.pop("pendingPlan", None)
        text = f"plugin {spec.plugin_id} {spec.version} applied to target {entry.name}"
        if result.changed:
            text += f" (migration {result.migration_id}, {result.duration_ms} ms)"
            self.event("Normal", "MigrationSucceeded", text)
        return Ran(entry.name, Outcome("Applied", text), entry_fields)


def _kept(old: Mapping[str, Any] | None) -> dict[str, Any]:
    """What an entry keeps from its last run when this one changed nothing there (no conditions)."""
    if not old:
        return {}
    return {k: v for k, v in old.items() if k in ("name", "appliedVersion", "appliedChecksum", "lastMigration")}


def _entry(ran: Ran, old: Mapping[str, Any] | None, generation: int, stamp: str) -> dict[str, Any]:
    entry = {"name": ran.name, **{k: v for k, v in ran.entry.items() if k != "name"}}
    entry["conditions"] = conditions.compute((old or {}).get("conditions"), ran.outcome, generation, stamp)
    return entry


def _not_run(fleet: Fleet, entry: TargetEntry, why: str) -> Ran:
    """A selected target this run did not reach: Ready if it already holds this spec, else waiting."""
    old = fleet.old_entries.get(entry.name)
    checksum = fleet.loaded.spec.checksum()
    if old and old.get("appliedChecksum") == checksum and conditions.current(old.get("conditions")) is not None:
        ready = conditions.current(old.get("conditions")) or {}
        if ready.get("status") == "True":
            return Ran(entry.name, Outcome("Applied", str(ready.get("message") or "applied")), _kept(old))
    return Ran(entry.name, Outcome("RolloutWaiting", why), _kept(old))


async def _newer(fleet: Fleet) -> tuple[int | None, str | None]:
    """The generation that replaced this run's (None: still current) and the resourceVersion read."""
    try:
        now_body = await fleet.run.api.get_schema(fleet.namespace, fleet.name)
    except Exception as error:  # the API is away: go on; kopf's own patch will tell
        log.warning("re-reading %s/%s between waves failed: %s", fleet.namespace, fleet.name, error)
        return None, None
    if now_body is None:
        return fleet.generation + 1, None
    meta = now_body.get("metadata") or {}
    generation = int(meta.get("generation") or 0)
    if generation != fleet.generation or meta.get("deletionTimestamp"):
        return max(generation, fleet.generation + 1), None
    return None, str(meta.get("resourceVersion") or "")


def _status_fields(
    fleet: Fleet, chosen: Sequence[TargetEntry], ran: Mapping[str, Ran], extra: Iterable[Ran], stamp: str
) -> dict[str, Any]:
    """status.targets (wave order of *chosen*, then targets whose removal failed), targetsReady, pendingPlan."""
    old = fleet.old_entries
    entries: list[dict[str, Any]] = []
    seen_hashes: set[str] = set()
    first_pending: dict[str, Any] | None = None
    for one in [*(ran[e.name] for e in chosen if e.name in ran), *extra]:
        entry = _entry(one, old.get(one.name), fleet.generation, stamp)
        pending = entry.get("pendingPlan")
        if pending is not None:
            if first_pending is None:
                first_pending = dict(pending)
            if pending["hash"] in seen_hashes:  # the ops list once per distinct plan: bounded status size
                entry["pendingPlan"] = {k: v for k, v in pending.items() if k not in ("ops", "lint")}
            seen_hashes.add(pending["hash"])
        entries.append(entry)
    ready = sum(1 for e in chosen if e.name in ran and ran[e.name].state == "ready")
    return {
        "targets": entries[: limits.MAX_SELECTED_TARGETS],
        "targetsReady": f"{ready}/{len(chosen)}",
        "pendingPlan": first_pending,
    }


async def _remove(fleet: Fleet, name: str, entry: TargetEntry | None, why: str = "is no longer selected") -> Ran | None:
    """Take the plugin off a target no longer selected (deletionPolicy); None when done, else its failure."""
    spec = fleet.loaded.spec
    if entry is None:
        old = fleet.old_entries.get(name) or {}
        left = f"version {old['appliedVersion']}" if old.get("appliedVersion") else "whatever it had applied"
        fleet.event(
            "Warning",
            "TargetGone",
            f"DatabaseTarget {name} was deleted: plugin {spec.plugin_id} ({left}, registered to "
            f"{fleet.loaded.owner}) is left in its database as it is; remove it there with "
            f"`extschema delete {spec.plugin_id} --database URL` if it should go",
        )
        return None
    retain = spec.deletion_policy == "Retain"
    try:
        target = await target_of(fleet.run.api, fleet.namespace, entry)
        engine = await asyncio.to_thread(fleet.run.engines.get, target)
        result = await asyncio.to_thread(database.delete, engine, spec.plugin_id, fleet.loaded.owner, retain)
        if target.plugin_roles and result is not None:
            await plugin_roles.revoke(engine, spec.plugin_id)
    except Exception as error:
        outcome = outcome_of(error)
        message = f"target {name} {why}, but removing plugin {spec.plugin_id} failed: {outcome.message}"
        return Ran(name, Outcome(outcome.reason, message), _kept(fleet.old_entries.get(name)))
    if result is not None:
        what = "unregistered, tables retained" if retain else "dropped (data backed up first)"
        reason = "TargetDeselected" if why == "is no longer selected" else "Deleted"
        fleet.event("Normal", reason, f"target {name} {why}: plugin {spec.plugin_id} {what}")
    return None


async def reconcile_selector(
    run: Any,
    body: kopf.Body,
    loaded: reconcile.Loaded,
    patch: kopf.Patch,
    retry: int,
    claims: kopf.Index[str, ClaimEntry],
    targets: kopf.Index[Any, Any],
) -> None:
    """The reconcile of a resource with spec.targetSelector (see the module's docstring)."""
    spec = loaded.spec
    selector = spec.target_selector
    assert selector is not None
    rules = spec.rollout or RolloutSpec()
    meta = body.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    fleet = Fleet(run, body, loaded, namespace, claims, targets)
    run.waiting.track(meta, None)
    run.drift.track(meta, None)  # per-target drift is not checked (docs/fleet.md)
    status = body.get("status") or {}
    old_rollout = status.get("rollout") or {}
    annotation = (meta.get("annotations") or {}).get(plan.RESUME_ANNOTATION)
    stays = not plan.resumes(
        paused=old_rollout.get("phase") == "Paused",
        paused_generation=status.get("observedGeneration"),
        generation=fleet.generation,
        resumed=old_rollout.get("resumed"),
        annotation=annotation,
    )
    if stays:  # paused, and neither the spec nor the resume annotation changed
        message = str(old_rollout.get("message") or "rollout paused")
        return settle(body, patch, Outcome("RolloutPaused", message), run.stats, fields={"pendingPlan": None})
    every = selected(targets, namespace, selector)
    chosen = every[: limits.MAX_SELECTED_TARGETS]
    names = {e.name for e in chosen}
    # Targets no longer selected (labels changed, or the DatabaseTarget deleted) lose the plugin first.
    kept_failures: list[Ran] = []
    for gone in sorted(set(fleet.old_entries) - names):
        failed = await _remove(fleet, gone, indexed(targets, namespace, gone))
        if failed is not None:
            kept_failures.append(failed)
    canaries = {e.name for e in chosen if rules.canary is not None and rules.canary.matches(e.labels)}
    waves = plan.plan_waves(names, canaries, rules.max_parallel)
    by_name = {e.name: e for e in chosen}
    gate = asyncio.Semaphore(max(1, min(rules.max_parallel, run.settings.database_threads)))
    ran: dict[str, Ran] = {}
    paused_at: str | None = None
    interrupted: int | None = None
    canary_blocked = False

    async def one(name: str) -> Ran:
        async with gate:
            return await fleet.apply(by_name[name])

    for wave in waves:
        if not wave.canary and any(ran[c].state != "ready" for c in canaries if c in ran):
            canary_blocked = True
            break
        if wave.number > 1:
            interrupted, resource_version = await _newer(fleet)
            if interrupted is not None:
                break
            if resource_version:  # show the progress so far (best effort; the final status follows)
                so_far = {
                    e.name: ran.get(e.name) or _not_run(fleet, e, f"waits for a later wave than {wave.number - 1}")
                    for e in chosen
                }
                progress = plan.summarize({n: r.state for n, r in so_far.items()}, selector=selector.text())
                fields = _status_fields(fleet, chosen, so_far, kept_failures, now())
                fields.pop("pendingPlan")
                fields["rollout"] = {
                    "phase": "Progressing",
                    "message": f"wave {wave.number}/{len(waves)} starting; {progress.message}"[
                        : limits.MAX_CONDITION_MESSAGE
                    ],
                }
                try:
                    await run.api.patch_status(namespace, fleet.name, resource_version, fields)
                except Exception as error:
                    log.warning("progress of %s/%s not written: %s", namespace, fleet.name, error)
        kind = "canary wave" if wave.canary else "wave"
        fleet.event("Normal", "RolloutWave", f"{kind} {wave.number}/{len(waves)}: {', '.join(wave.targets)}")
        for done in await asyncio.gather(*(one(n) for n in wave.targets)):
            ran[done.name] = done
        broken = [ran[n] for n in wave.targets if ran[n].state == "failed"]
        if broken and rules.pause_on_failure:
            paused_at = broken[0].name
            break
    if kept_failures and rules.pause_on_failure and paused_at is None and interrupted is None:
        paused_at = kept_failures[0].name
    reached = f"generation {interrupted} arrived" if interrupted is not None else "the rollout stopped before it"
    if paused_at is not None:
        reached = f"the rollout is paused at {paused_at}"
    elif canary_blocked:
        reached = "it waits until every canary is Ready"
    for entry in chosen:
        if entry.name not in ran:
            ran[entry.name] = _not_run(fleet, entry, f"not migrated to generation {fleet.generation} yet: {reached}")
    waiting: dict[str, list[str]] = {}
    for entry in chosen:
        one_ran = ran[entry.name]
        if one_ran.pending is not None:
            waiting.setdefault(one_ran.pending.hash, []).append(entry.name)
    failures = {r.name: r.outcome.message for r in [*ran.values(), *kept_failures] if r.state == "failed"}
    summary = plan.summarize(
        {e.name: ran[e.name].state for e in chosen},
        selector=selector.text(),
        waiting_hashes=waiting,
        failures=failures,
        paused_at=paused_at,
        interrupted_by=interrupted,
        canary_blocked=canary_blocked,
    )
    message = summary.message
    if len(every) > len(chosen):
        message += f"; only the first {len(chosen)} of {len(every)} selected targets are managed (limit)"
    fields = _status_fields(fleet, chosen, ran, kept_failures, now())
    rollout_status = {"phase": summary.phase, "message": message[: limits.MAX_CONDITION_MESSAGE]}
    if paused_at is not None:
        rollout_status["pausedAt"] = paused_at
    if annotation is not None:
        rollout_status["resumed"] = str(annotation)[:256]
    fields["rollout"] = rollout_status
    fields["target"] = None
    if summary.reason == "Applied":
        first = ran[chosen[0].name].entry
        fields["appliedVersion"] = first.get("appliedVersion")
        fields["appliedChecksum"] = first.get("appliedChecksum")
    retried = paused_at is None and any(conditions.reason(r.outcome.reason).retried for r in ran.values())
    settle(body, patch, Outcome(summary.reason, message), run.stats, retry=retry, fields=fields)
    if retried:  # a database away, a target not found: try those again (the others are no-ops)
        raise kopf.TemporaryError(message, delay=conditions.backoff(retry))
    return None


async def cleanup_selector(
    run: Any,
    body: kopf.Body,
    loaded: reconcile.Loaded,
    patch: kopf.Patch,
    retry: int,
    logger: Logger,
    targets: kopf.Index[Any, Any],
) -> None:
    """Delete a selector resource: the plugin leaves every target of status.targets (and every target
    selected now) by deletionPolicy. Targets done leave status.targets; a failing one keeps the finalizer."""
    meta = body.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    fleet = Fleet(run, body, loaded, namespace, {}, targets)  # type: ignore[arg-type]
    selector = loaded.spec.target_selector
    names = set(fleet.old_entries) | ({e.name for e in selected(targets, namespace, selector)} if selector else set())
    rules = loaded.spec.rollout or RolloutSpec()
    gate = asyncio.Semaphore(max(1, min(rules.max_parallel, run.settings.database_threads)))

    async def one(name: str) -> Ran | None:
        async with gate:
            return await _remove(fleet, name, indexed(targets, namespace, name), "is left by the deleted resource")

    results = await asyncio.gather(*(one(n) for n in sorted(names)))
    failed = [r for r in results if r is not None]
    if not failed:
        return None
    stamp = now()
    left = [_entry(r, fleet.old_entries.get(r.name), fleet.generation, stamp) for r in failed]

    def keep_failed(raw: Any) -> None:
        raw.setdefault("status", {})["targets"] = left

    patch.fns.append(keep_failed)
    first = failed[0].outcome
    summary = f"{len(failed)} target(s) still hold the plugin ({', '.join(r.name for r in failed)}): {first.message}"
    cleanup_waits(body, patch, Outcome(first.reason, summary), run.stats, retry, logger, run.settings.blocked_retry)
