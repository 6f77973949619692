"""The kopf handlers of the operator: thin bodies around :mod:`extschema.reconcile`.

One idempotent reconcile serves resume, create and update (the database registry is the
idempotency record, not kopf's annotations). Every outcome goes through
:func:`extschema.controller.status.settle`. Blocking database work runs in threads
(:mod:`extschema.controller.database`). The operator's state lives in kopf's memo
(:mod:`extschema.controller.runtime`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import time
from collections.abc import Mapping
from typing import Any

import kopf

from extschema import conditions, limits, reconcile
from extschema.conditions import Outcome
from extschema.controller import database, drift, kubeapi, plugin_roles, rollout, sharding
from extschema.controller.claims import ClaimEntry, claim_of, claims_on, order_of, peers_of, selector_key
from extschema.controller.diffbase import DigestDiffBaseStorage
from extschema.controller.readiness import Readiness
from extschema.controller.recheck import Waiting, every, recheck_loop
from extschema.controller.runtime import Runtime, runtime
from extschema.controller.settings import (
    DEFAULT_TARGET,
    FINALIZER,
    GROUP,
    SCHEMAS,
    TARGETS,
    VERSION,
    WAITING_REASONS,
)
from extschema.controller.status import (
    Logger,
    Settle,
    applied_fields,
    approval_outcome,
    approved_hashes_of,
    cleanup_waits,
    outcome_of,
    pending_fields,
    pending_of,
    settle,
    unchanged_message,
)
from extschema.controller.targets import TargetEntry, indexed, resolve_target, target_key, target_of

# --- operator lifecycle -------------------------------------------------------------------------


@kopf.on.startup(id="settings")
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    run = runtime(memo)
    settings.persistence.finalizer = FINALIZER
    # kopf's own log lines become events only for warnings; ours are posted explicitly.
    settings.posting.level = logging.WARNING
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kopf.extschema.io")
    # A digest, not the whole spec: all annotations of an object must fit 256 KiB (docs/operator.md).
    settings.persistence.diffbase_storage = DigestDiffBaseStorage(prefix="kopf.extschema.io")
    wait_out_api_outages(settings)
    await wait_until_served(run, settings, kwargs["logger"])
    sharding.configure(settings, run.settings)  # --shard I: watch only this shard's ExtensionSchemas
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(run.settings.database_threads, thread_name_prefix="extschema-db")
    )
    # Indexes are live objects, handed to startup handlers (empty; filled before resource handlers run).
    run.recheck = asyncio.create_task(
        recheck_loop(kwargs["claims"], run.waiting, run.api.poke, run.settings), name="extschema-recheck"
    )
    if run.settings.readiness:  # /readyz: logged in and the default database answers (apart from liveness)
        run.readiness = Readiness(run, run.settings.readiness)
        await run.readiness.start()
    if run.settings.metrics_port:  # Prometheus /metrics, fed by settle and the migration events
        run.stats.metrics.serve(run.settings.metrics_port, run.settings.metrics_addr)
    checker = drift.DriftCheck(run.api, run.engines)
    check = run.stats.metrics.drift_check(checker.check)
    run.drift_loop = asyncio.create_task(
        every(
            run.settings.drift_tick,
            lambda: drift.check_round(run.drift, check, checker.show, run.settings.drift_interval),
            "drift check",
        ),
        name="extschema-drift",
    )


async def wait_until_served(run: Runtime, settings: kopf.OperatorSettings, logger: Logger) -> None:
    """Wait until the API serves ExtensionSchemas and DatabaseTargets. kopf looks the kinds up once, when the
    startup handlers are done (and again only when a CRD changes): an operator started while kube-apiserver
    was coming back found neither and watched nothing, for good (found by the chaos suite)."""
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        return  # no credentials of ours to look with: kopf's own login says why
    run.api.login(info)
    wanted, waited = {SCHEMAS, TARGETS}, 0.0
    for delay in itertools.chain(limits.API_ERROR_BACKOFFS_S, itertools.repeat(30.0)):
        try:
            missing = wanted - await run.api.served(f"{GROUP}/{VERSION}")
        except Exception as error:  # not answering yet
            missing, why = wanted, str(error) or type(error).__name__
        else:
            why = "the API does not serve them (yet)"
        if not missing:
            return
        logger.warning("waiting for the API to serve %s (%.0f s so far): %s", ", ".join(sorted(missing)), waited, why)
        await asyncio.sleep(delay)
        waited += delay


def wait_out_api_outages(settings: kopf.OperatorSettings) -> None:
    """Retry a failed API request for minutes, not kopf's 54 s: past them a status patch fails as an "unexpected
    error" with a traceback in the log (the chaos suite's long control-plane restart, docs/chaos.md)."""
    settings.networking.error_backoffs = limits.API_ERROR_BACKOFFS_S


@kopf.on.login(id="login")
async def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo | kopf.AiohttpSession | None:
    """In a pod the service account, else KUBECONFIG; kept for the operator's own GETs of Secrets.

    kopf gets the same credentials as a session whose pool is bounded by ``Settings.api_connections``.
    """
    run = runtime(memo)
    info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    if info is None:
        return None
    run.api.login(info)
    if not run.settings.api_connections:
        return info
    return kubeapi.bounded_session(info, run.settings.api_connections)


@kopf.on.cleanup(id="close")
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    run = runtime(memo)
    for task in (run.recheck, run.drift_loop):
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    run.recheck = run.drift_loop = None
    if run.readiness is not None:
        await run.readiness.close()
    await run.api.close()
    run.engines.close()
    run.stats.metrics.close()


@kopf.on.probe(id="reconciles")
def probe(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    """For the liveness endpoint: the last successful reconcile and counters."""
    run = runtime(memo)
    return {
        "lastSuccess": run.stats.last_success,
        "reconciles": run.stats.reconciles,
        "failures": run.stats.failures,
        "databases": len(run.engines),
    }


# --- indexes --------------------------------------------------------------------------------------


@kopf.index(GROUP, VERSION, TARGETS, id="targets")
def index_targets(
    namespace: str | None, name: str, spec: Mapping[str, Any], labels: Mapping[str, str], **_: Any
) -> dict[tuple[str, str], TargetEntry]:
    """Each DatabaseTarget's typed spec and labels, parsed once per change (or why it is unusable)."""
    return {(namespace or "", name): TargetEntry.of(name, labels, spec)}


@kopf.index(GROUP, VERSION, SCHEMAS, id="claims", labels={sharding.LABEL: sharding.owned})
def index_claims(body: kopf.Body, namespace: str | None, memo: kopf.Memo, **_: Any) -> dict[str, ClaimEntry]:
    return claim_of(body, namespace, runtime(memo).parsed)


# --- ExtensionSchema ------------------------------------------------------------------------------


# Sharded (--shard I), each handler sees only resources labeled extschema.io/shard=I (controller.sharding).
@kopf.on.resume(GROUP, VERSION, SCHEMAS, id="reconcile", labels={sharding.LABEL: sharding.owned})
@kopf.on.create(GROUP, VERSION, SCHEMAS, id="reconcile", labels={sharding.LABEL: sharding.owned})
@kopf.on.update(GROUP, VERSION, SCHEMAS, id="reconcile", labels={sharding.LABEL: sharding.owned})
async def reconcile_schema(
    body: kopf.Body,
    spec: Mapping[str, Any],
    meta: Mapping[str, Any],
    namespace: str | None,
    patch: kopf.Patch,
    retry: int,
    logger: Logger,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    run = runtime(memo)
    run.stats.reconciles += 1
    namespace = namespace or ""
    claims: kopf.Index[str, ClaimEntry] = kwargs["claims"]
    fields: dict[str, Any] = {"target": (spec.get("targetRef") or {}).get("name") or DEFAULT_TARGET}
    if spec.get("suspend"):
        run.waiting.track(meta, None)
        run.drift.track(meta, None)
        suspended = Outcome("Suspended", "spec.suspend is true: the database is left as it is")
        if spec.get("targetSelector") is not None:  # its status.targets stays as the rollout left it
            return settle(body, patch, suspended, run.stats, fields={"target": None})
        return settle(body, patch, suspended, run.stats, fields=fields, target=fields["target"])
    typed = run.parsed.get(body)  # the typed spec, parsed once per generation (None: invalid, reported below)
    if typed is not None and typed.spec.target_selector is not None:
        return await rollout.reconcile_selector(run, body, typed, patch, retry, claims, kwargs["targets"])
    fingerprint: str | None = None
    key, order = DEFAULT_TARGET, ("", "")
    try:
        loaded = typed or reconcile.from_object(dict(body), f"{namespace}/{meta.get('name')}")
        key = target_key(namespace, spec)
        order = order_of(meta, loaded.owner)
        found = indexed(kwargs["targets"], namespace, key.partition("/")[2]) if key != DEFAULT_TARGET else None
        own = claims_on(claims, key, found.labels if found is not None else None)
        peers, fingerprint = peers_of(own, str(meta.get("uid")), order)
        target = await resolve_target(run.api, run.settings, namespace, spec, kwargs["targets"])
        engine = await asyncio.to_thread(run.engines.get, target)
        loop = asyncio.get_running_loop()
        started_message = f"applying {loaded.spec.plugin_id} {loaded.spec.version} to {target.label}"

        def started() -> None:
            loop.call_soon_threadsafe(
                lambda: kopf.event(body, type="Normal", reason="MigrationStarted", message=started_message)
            )

        name, generation = str(meta.get("name")), int(meta.get("generation") or 0)
        confirm = database.confirming(loop, lambda: run.api.get_schema(namespace, name), generation)
        metrics = run.stats.metrics
        result = await asyncio.to_thread(database.apply, engine, loaded, peers, started, metrics, confirm)
        if target.plugin_roles:
            await plugin_roles.publish(run.api, engine, body, loaded.spec.plugin_id)
    except database.Superseded as superseded:  # an old body: the newer one's event applies and reports it
        logger.info("%s; left to the newer generation's event", superseded.problems[0].message)
        return
    except Exception as error:  # every failure is reported the same way
        run.drift.track(meta, None)
        outcome = outcome_of(error)
        pending = pending_of(error, str(spec.get("pluginId")))
        if pending is not None and isinstance(error, reconcile.ApprovalRequired):
            # Waiting for an approval: not a failure, not retried; the spec's change runs it.
            outcome = approval_outcome(pending, approved_hashes_of(spec))
            try:
                findings = await asyncio.to_thread(database.lint, engine, error, pending.plugin_id)
            except Exception:  # the lint is for the reviewer; the plan still waits and is shown without it
                logger.warning("squawk lint of the waiting plan failed", exc_info=True)
                findings = []
            fields.update(pending_fields(pending, findings))
        if outcome.reason == "InternalError":
            logger.exception("reconcile failed unexpectedly")
        if outcome.reason in WAITING_REASONS and fingerprint is not None:
            waiting = Waiting(namespace, str(meta.get("name")), key, order, fingerprint, time.monotonic())
            run.waiting.track(meta, waiting)
        else:
            run.waiting.track(meta, None)
        event = "MigrationFailed" if outcome.reason == "MigrationFailed" else None
        one = fields["target"]
        if not conditions.reason(outcome.reason).retried and await moved_on(run, namespace, meta, logger):
            return
        return settle(body, patch, outcome, run.stats, retry=retry, fields=fields, event=event, target=one)
    run.waiting.track(meta, None)
    interval = run.settings.drift_interval
    run.drift.track(meta, drift.watched(meta, spec, loaded.spec.plugin_id, target, interval, soon=result.changed))
    fields.update(applied_fields(result, loaded.spec.version))
    message = f"plugin {loaded.spec.plugin_id} {loaded.spec.version} applied to {target.label}"
    if result.changed:
        message += f" (migration {result.migration_id}, {result.duration_ms} ms)"
        # Objects deletionPolicy Retain kept, taken back: said, since nothing was created.
        message += "".join(f"; {line}" for line in result.description if line.startswith("adopted "))
        applied = Outcome("Applied", message)
        return settle(body, patch, applied, run.stats, fields=fields, event="MigrationSucceeded", target=target.label)
    if await moved_on(run, namespace, meta, logger):
        return
    unchanged = Outcome("Applied", unchanged_message(body, message))
    return settle(body, patch, unchanged, run.stats, fields=fields, target=target.label)


async def moved_on(run: Runtime, namespace: str, meta: Mapping[str, Any], logger: Logger) -> bool:
    """Whether the resource moved on from the body being handled (a newer generation, or gone): checked before
    a status no migration of this body confirmed under its lock, so that an operator holding an old body (a
    second instance, a slow start) never overwrites what the newer generation's run reported."""
    name, generation = str(meta.get("name")), int(meta.get("generation") or 0)
    try:
        now = await run.api.get_schema(namespace, name)
    except Exception:  # the API is away: kopf's own patch of the status meets the same
        return False
    newer = int(((now or {}).get("metadata") or {}).get("generation") or 0)
    if now is not None and newer == generation:
        return False
    logger.info("generation %s was replaced (%s) while it was handled; its status is left to it", generation, newer)
    return True


@kopf.on.delete(GROUP, VERSION, SCHEMAS, id="cleanup", labels={sharding.LABEL: sharding.owned_or_unassigned})
async def cleanup_schema(
    body: kopf.Body, spec: Mapping[str, Any], meta: Mapping[str, Any], status: Mapping[str, Any], **kwargs: Any
) -> None:
    """Drop (Drop) or unregister (Retain) the plugin. Never PermanentError, never retries=/timeout=:
    kopf would remove the finalizer after a failed cleanup.

    A suspended resource's deletion touches nothing: suspend means the database is left alone, and
    its deletionPolicy runs only if it is deleted while not suspended."""
    run = runtime(kwargs["memo"])
    namespace: str = kwargs["namespace"] or ""
    patch: kopf.Patch = kwargs["patch"]
    retry: int = kwargs["retry"]
    logger: Logger = kwargs["logger"]
    run.waiting.track(meta, None)  # a resource being deleted waits for nothing
    run.drift.track(meta, None)
    run.stats.metrics.forget(meta)  # a failed cleanup reports itself again through settle
    plugin_id = spec.get("pluginId")
    owner = f"{namespace}/{meta.get('name')}"
    if not isinstance(plugin_id, str) or not plugin_id:
        return None
    if spec.get("suspend"):
        if status.get("appliedChecksum"):
            policy = spec.get("deletionPolicy", "Drop")
            message = (
                f"plugin {plugin_id} left as it is: spec.suspend is true, so deletionPolicy {policy} did not run; "
                f"it stays registered to {owner} (re-create this resource to manage it again, or run "
                f"`extschema delete {plugin_id}`)"
            )
            kopf.event(body, type="Normal", reason="Deleted", message=message)
        return None
    typed = run.parsed.get(body)
    if typed is not None and typed.spec.target_selector is not None:
        return await rollout.cleanup_selector(run, body, typed, patch, retry, logger, kwargs["targets"])
    try:
        target = await resolve_target(run.api, run.settings, namespace, spec, kwargs["targets"])
    except Settle as error:
        if not status.get("appliedChecksum"):
            return None  # never applied and its database is unknown: nothing of ours can exist
        cleanup_waits(body, patch, error.outcome, run.stats, retry, logger, run.settings.blocked_retry)
    retain = spec.get("deletionPolicy", "Drop") == "Retain"
    try:
        engine = await asyncio.to_thread(run.engines.get, target)
        result = await asyncio.to_thread(database.delete, engine, plugin_id, owner, retain)
        if target.plugin_roles and result is not None:
            await plugin_roles.revoke(engine, plugin_id)
    except Exception as error:
        cleanup_waits(body, patch, outcome_of(error), run.stats, retry, logger, run.settings.blocked_retry)
    if result is not None:
        what = "unregistered, tables retained" if retain else "dropped (data backed up first)"
        kopf.event(body, type="Normal", reason="Deleted", message=f"plugin {plugin_id} {what}")
    return None


@kopf.on.event(GROUP, VERSION, SCHEMAS, id="shard-label", labels={sharding.LABEL: sharding.unassigned})
def label_shard(
    type: str | None, meta: Mapping[str, Any], namespace: str | None, name: str, patch: kopf.Patch, **kwargs: Any
) -> None:
    """Shard 0 stamps an unassigned ExtensionSchema with its shard (at start, and any created unlabeled later).

    One being deleted keeps no label: shard 0 cleans it up itself (moving it would hand over mid-cleanup).
    DELETED: the resource left this shard's watch (labeled), the event shows it as it was before."""
    if type == "DELETED" or meta.get("deletionTimestamp"):
        return
    label = sharding.label_for(runtime(kwargs["memo"]).settings, namespace, name, meta.get("labels") or {})
    if label is not None:
        # A JSON patch, like kopf's finalizer: both in one request, no state in between for the new owner to see.
        patch.fns.append(sharding.labeled(label))


# --- DatabaseTarget -------------------------------------------------------------------------------


async def _connect(
    body: kopf.Body,
    retry: int,
    *,
    spec: Mapping[str, Any],
    namespace: str | None,
    name: str,
    patch: kopf.Patch,
    memo: kopf.Memo,
    labels: Mapping[str, str] | None = None,
    **_: Any,
) -> None:
    """Connect to the target's database and report it; retried reasons raise kopf.TemporaryError.
    A malformed spec (a duration such as ``5 secs``) is InvalidTarget here, naming the field."""
    run = runtime(memo)
    try:
        entry = TargetEntry.of(name, labels, spec)
        target = await target_of(run.api, namespace or "", entry)
        engine = await asyncio.to_thread(run.engines.get, target)
        backend, version = await asyncio.to_thread(database.ping, engine)
    except Exception as error:
        return settle(body, patch, outcome_of(error), run.stats, retry=retry)
    connected = Outcome("Connected", f"connected to {backend} {version}")
    return settle(body, patch, connected, run.stats, fields={"backend": backend, "serverVersion": version})


# Sharded, only shard 0 writes DatabaseTargets' status; every shard keeps the targets index.
@kopf.on.resume(GROUP, VERSION, TARGETS, id="connect", when=sharding.writes_targets)
@kopf.on.create(GROUP, VERSION, TARGETS, id="connect", when=sharding.writes_targets)
@kopf.on.update(GROUP, VERSION, TARGETS, id="connect", when=sharding.writes_targets)
async def connect_target(body: kopf.Body, retry: int, **kwargs: Any) -> None:
    return await _connect(body, retry, **kwargs)


@kopf.timer(
    GROUP,
    VERSION,
    TARGETS,
    id="ping",
    interval=limits.TARGET_PING_INTERVAL_S,
    initial_delay=limits.TARGET_PING_INTERVAL_S,
    when=sharding.keeps_target_finalizer,
)
async def ping_target(body: kopf.Body, **kwargs: Any) -> None:
    """Re-check the connection every minute; a failure is reported, not retried (the next tick is the retry).

    Sharded, it runs on every shard once the finalizer it needs is there (controller.sharding), but only
    shard 0 writes the status."""
    if not sharding.writes_targets(kwargs["memo"]):
        return
    kwargs.pop("retry", None)
    with contextlib.suppress(kopf.TemporaryError):
        await _connect(body, 0, **kwargs)


@kopf.on.event(GROUP, VERSION, TARGETS, id="select")
async def select_target(
    event: Mapping[str, Any], body: kopf.Body, namespace: str | None, name: str, memo: kopf.Memo, **kwargs: Any
) -> None:
    """A DatabaseTarget added, deleted, relabeled or changed: poke the targetSelector resources that
    select it now or did before, so they apply the plugin to it, or take it off (deletionPolicy)."""
    run = runtime(memo)
    namespace = namespace or ""
    meta = body.get("metadata") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    seen = (labels, int(meta.get("generation") or 0))
    before = run.selections.get((namespace, name))
    kind = event.get("type")
    if meta.get("deletionTimestamp") and kind != "DELETED":
        return  # going: the selectors are poked once it is gone (and the index no longer has it)
    if kind == "DELETED":
        run.selections.pop((namespace, name), None)
    else:
        run.selections[(namespace, name)] = seen
        if kind is None or before == seen:  # the initial listing (resources resume anyway), or a status write
            return
    claims: kopf.Index[str, ClaimEntry] = kwargs["claims"]
    old_labels = before[0] if before is not None else labels
    for entry in claims.get(selector_key(namespace), ()):
        if entry.selector is not None and (entry.selector.matches(labels) or entry.selector.matches(old_labels)):
            await run.api.poke(namespace, entry.owner.partition("/")[2])
