"""The kopf shell of the operator: thin handlers around :mod:`extschema.reconcile`.

One idempotent reconcile serves resume, create and update (the database registry is the
idempotency record, not kopf's annotations). Every outcome goes through :func:`_settle`, which
writes status and conditions (through ``patch.fns``: applied to the freshest body with a
resourceVersion check), posts an event when the Ready condition changes, and decides between a
retry with backoff (``kopf.TemporaryError``) and a stall (return; nothing runs until the spec
changes or a re-check pokes the resource). Blocking database work runs in threads.

Cross-resource conflicts: the ``claims`` index holds every valid ExtensionSchema per target
database; older claims (creationTimestamp, then namespace/name) are passed to the pipeline as
peers. One operator-wide loop re-checks the resources waiting for others (Conflict,
DependencyNotReady) and re-runs their reconcile when the claims of their target change, so losers
proceed by themselves once the winner is deleted and dependents once their dependencies are Ready.
(Not a per-resource ``kopf.timer``: any timer or daemon on a resource kind makes kopf keep the full
last-seen body of every object of that kind in memory, waiting or not.)
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

import aiohttp
import kopf

from extschema import conditions, conflicts, reconcile
from extschema.conditions import Outcome
from extschema.engine import ApplyResult, Engine
from extschema.problems import ProblemError

GROUP = "extschema.io"
VERSION = "v1alpha1"
SCHEMAS = "extensionschemas"
TARGETS = "databasetargets"
FINALIZER = "extschema.io/cleanup"
RECHECK_ANNOTATION = "extschema.io/recheck"
DEFAULT_TARGET = "default"
WAITING_REASONS = frozenset({"Conflict", "DependencyNotReady"})

log = logging.getLogger("extschema.operator")
Logger = logging.Logger | logging.LoggerAdapter[Any]


@dataclasses.dataclass
class Config:
    """Set by ``extschema run`` before kopf starts."""

    default_database: str | None = None
    #: Seconds between re-checks of waiting resources (cheap: in-memory unless something changed).
    recheck_interval: float = 2.0
    #: Re-run a waiting resource at least this often, for changes made outside this cluster.
    recheck_fallback: float = 60.0
    #: Delay before retrying a deletion blocked by dependents.
    blocked_retry: float = 5.0
    database_threads: int = 16
    #: Connections kopf may open to the API server (0: unlimited, kopf's default). Each TLS connection
    #: costs ~300 kB (asyncio's 256 kB read buffer alone); unlimited, a burst of changes opens hundreds.
    #: Must leave room for the long-lived watch streams: ``extschema run`` sets it from the namespaces.
    api_connections: int = 0


CONFIG = Config(
    default_database=os.environ.get("EXTSCHEMA_DATABASE_URL") or None,
    recheck_interval=float(os.environ.get("EXTSCHEMA_RECHECK_SECONDS", "2")),
)


def configure(default_database: str | None = None, **options: Any) -> None:
    if default_database:
        CONFIG.default_database = default_database
    for key, value in options.items():
        setattr(CONFIG, key, value)


@dataclasses.dataclass
class _State:
    connection: kopf.ConnectionInfo | None = None
    session: aiohttp.ClientSession | None = None
    last_success: str | None = None
    reconciles: int = 0
    failures: int = 0
    recheck: asyncio.Task[None] | None = None


STATE = _State()
_ENGINES: dict[tuple[str, int, int], Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- operator lifecycle -------------------------------------------------------------------------


@kopf.on.startup(id="settings")
async def startup(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    # kopf's own log lines become events only for warnings; ours are posted explicitly.
    settings.posting.level = logging.WARNING
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kopf.extschema.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="kopf.extschema.io", key="last-handled-configuration"
    )
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(CONFIG.database_threads, thread_name_prefix="extschema-db")
    )
    # Indexes are live objects, handed to startup handlers (empty; filled before resource handlers run).
    STATE.recheck = asyncio.create_task(_recheck_loop(kwargs["claims"]), name="extschema-recheck")


@kopf.on.login(id="login")
async def login(**kwargs: Any) -> kopf.ConnectionInfo | kopf.AiohttpSession | None:
    """In a pod the service account, else KUBECONFIG; kept for the operator's own GETs of Secrets.

    kopf gets the same credentials as a session whose pool is bounded by ``CONFIG.api_connections``.
    """
    info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    if info is None:
        return None
    if info != STATE.connection:
        STATE.connection = info
        STATE.session = None  # rebuilt on next use with the new credentials
    if not CONFIG.api_connections:
        return info
    # What kopf builds for a ConnectionInfo (kopf/_cogs/clients/auth.py), with a bounded pool. kopf
    # closes it when the credentials are refreshed.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=CONFIG.api_connections, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        server=info.server,
        priority=info.priority,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
        aiohttp_session=session,
    )


@kopf.on.cleanup(id="close")
async def shutdown(**_: Any) -> None:
    if STATE.recheck is not None:
        STATE.recheck.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await STATE.recheck
        STATE.recheck = None
    if STATE.session is not None:
        await STATE.session.close()
        STATE.session = None
    with _ENGINES_LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for engine in engines:
        engine.close()


@kopf.on.probe(id="reconciles")
def probe(**_: Any) -> dict[str, Any]:
    """For the liveness endpoint: the last successful reconcile and counters."""
    return {
        "lastSuccess": STATE.last_success,
        "reconciles": STATE.reconciles,
        "failures": STATE.failures,
        "databases": len(_ENGINES),
    }


# --- targets: which database, read without listing secrets ------------------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    key: str  # "default" or "namespace/name": claims conflict only within one target
    label: str  # what status.target shows
    url: str = dataclasses.field(repr=False)  # may hold a password: never logged
    lock_timeout_ms: int = 5_000
    statement_timeout_ms: int = 300_000


class Settle(Exception):
    """Raised inside a handler to end it with an outcome (see :func:`_settle`)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


_DURATION = re.compile(r"^([0-9]+)(ms|s|m)$")


def duration_ms(text: str | None, default: int) -> int:
    if not text:
        return default
    match = _DURATION.match(text)
    if not match:
        return default
    return int(match.group(1)) * {"ms": 1, "s": 1000, "m": 60_000}[match.group(2)]


async def _session() -> aiohttp.ClientSession:
    if STATE.session is None or STATE.session.closed:
        info = STATE.connection
        if info is None:
            raise Settle(Outcome("TargetNotFound", "the operator has no Kubernetes credentials yet"))
        STATE.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=info.as_ssl_context()),
            headers=info.as_http_headers(),
            timeout=aiohttp.ClientTimeout(total=30),
        )
    return STATE.session


async def read_secret(namespace: str, name: str, key: str) -> str:
    """One targeted GET of a Secret (RBAC: get on secrets; never list or watch)."""
    info = STATE.connection
    session = await _session()
    assert info is not None
    url = f"{info.server.rstrip('/')}/api/v1/namespaces/{namespace}/secrets/{name}"
    try:
        async with session.get(url) as response:
            if response.status in (403, 404):
                what = "does not exist" if response.status == 404 else "is not readable by the operator (RBAC)"
                raise Settle(Outcome("TargetNotFound", f"Secret {namespace}/{name} {what}"))
            response.raise_for_status()
            secret = await response.json()
    except aiohttp.ClientError as error:
        raise Settle(
            Outcome("TargetNotFound", f"cannot read Secret {namespace}/{name}: {type(error).__name__}")
        ) from None
    data = (secret.get("data") or {}).get(key)
    if not data:
        raise Settle(Outcome("TargetNotFound", f"Secret {namespace}/{name} has no key {key!r}"))
    return base64.b64decode(data).decode("utf-8").strip()


async def target_from_spec(namespace: str, name: str, spec: Mapping[str, Any]) -> Target:
    """The database a DatabaseTarget spec names."""
    secret_ref = spec.get("urlSecretRef")
    if secret_ref:
        url = await read_secret(namespace, secret_ref["name"], secret_ref.get("key") or "url")
    elif spec.get("url"):
        url = str(spec["url"])
    else:
        raise Settle(Outcome("InvalidTarget", f"DatabaseTarget {namespace}/{name} sets neither url nor urlSecretRef"))
    return Target(
        key=f"{namespace}/{name}",
        label=name,
        url=url,
        lock_timeout_ms=duration_ms(spec.get("lockTimeout"), 5_000),
        statement_timeout_ms=duration_ms(spec.get("statementTimeout"), 300_000),
    )


def target_key(namespace: str | None, spec: Mapping[str, Any]) -> str:
    ref = spec.get("targetRef") or {}
    return f"{namespace}/{ref['name']}" if ref.get("name") else DEFAULT_TARGET


async def resolve_target(namespace: str, spec: Mapping[str, Any], targets: kopf.Index[Any, Any]) -> Target:
    ref = spec.get("targetRef") or {}
    if not ref.get("name"):
        if not CONFIG.default_database:
            raise Settle(
                Outcome(
                    "TargetNotFound",
                    "spec.targetRef is not set and the operator has no default database (extschema run --database URL)",
                )
            )
        return Target(DEFAULT_TARGET, DEFAULT_TARGET, CONFIG.default_database)
    found = list(targets.get((namespace, ref["name"]), ()))
    if not found:
        raise Settle(
            Outcome(
                "TargetNotFound",
                f"DatabaseTarget {namespace}/{ref['name']} (spec.targetRef) does "
                "not exist; create it, or fix spec.targetRef.name",
            )
        )
    return await target_from_spec(namespace, ref["name"], found[0])


def engine_for(target: Target) -> Engine:
    key = (target.url, target.lock_timeout_ms, target.statement_timeout_ms)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = Engine(
                target.url,
                lock_timeout_ms=target.lock_timeout_ms,
                statement_timeout_ms=target.statement_timeout_ms,
            )
            _ENGINES[key] = engine
        return engine


# --- indexes --------------------------------------------------------------------------------------


@kopf.index(GROUP, VERSION, TARGETS, id="targets")
def index_targets(namespace: str | None, name: str, spec: Mapping[str, Any], **_: Any) -> dict[tuple[str, str], Any]:
    return {(namespace or "", name): dict(spec)}


@dataclasses.dataclass(frozen=True)
class ClaimEntry:
    """One ExtensionSchema's claim on its target, as the claims index keeps it."""

    created: str
    owner: str
    uid: str
    generation: int
    ready: bool
    claim: conflicts.Claim

    @property
    def order(self) -> tuple[str, str]:
        return self.created, self.owner


_PARSED: dict[tuple[str, int], reconcile.Loaded | None] = {}


def _parsed(body: Mapping[str, Any]) -> reconcile.Loaded | None:
    meta = body.get("metadata") or {}
    key = (str(meta.get("uid")), int(meta.get("generation") or 0))
    if key not in _PARSED:
        if len(_PARSED) > 8192:
            _PARSED.pop(next(iter(_PARSED)))
        try:
            _PARSED[key] = reconcile.from_object(dict(body), f"{meta.get('namespace')}/{meta.get('name')}")
        except ProblemError:
            _PARSED[key] = None
    return _PARSED[key]


def _is_ready(status: Mapping[str, Any] | None) -> bool:
    ready = conditions.current((status or {}).get("conditions"))
    return bool(ready and ready.get("status") == "True")


@kopf.index(GROUP, VERSION, SCHEMAS, id="claims")
def index_claims(body: kopf.Body, namespace: str | None, spec: Mapping[str, Any], **_: Any) -> dict[str, ClaimEntry]:
    loaded = _parsed(body)
    if loaded is None:
        return {}  # an invalid spec claims nothing
    meta = body.get("metadata") or {}
    return {
        target_key(namespace, spec): ClaimEntry(
            created=str(meta.get("creationTimestamp") or ""),
            owner=loaded.owner,
            uid=str(meta.get("uid")),
            generation=int(meta.get("generation") or 0),
            ready=_is_ready(body.get("status")),
            claim=conflicts.Claim(loaded.owner, loaded.spec),
        )
    }


def peers_of(entries: Iterable[ClaimEntry], uid: str, order: tuple[str, str]) -> tuple[list[conflicts.Claim], str]:
    """Claims older than *order* (oldest first) and a fingerprint of all the others' state."""
    others = [e for e in entries if e.uid != uid]
    older = sorted((e for e in others if e.order < order), key=lambda e: e.order)
    text = "|".join(sorted(f"{e.owner}:{e.uid}:{e.generation}:{e.ready}" for e in others))
    return [e.claim for e in older], hashlib.sha256(text.encode()).hexdigest()


# --- status and outcomes ----------------------------------------------------------------------------


def _status_fn(outcome: Outcome, generation: int | None, fields: Mapping[str, Any]) -> Callable[[Any], None]:
    def apply(raw: Any) -> None:
        status = raw.setdefault("status", {})
        for key, value in fields.items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = value
        status["conditions"] = conditions.compute(status.get("conditions"), outcome, generation, _now())
        if generation is not None:
            status["observedGeneration"] = generation

    return apply


def _settle(
    body: kopf.Body,
    patch: kopf.Patch,
    outcome: Outcome,
    *,
    retry: int = 0,
    fields: Mapping[str, Any] | None = None,
    event: str | None = None,
) -> None:
    """The one way a handler ends: status + conditions, an event on change, then retry or stall."""
    generation = (body.get("metadata") or {}).get("generation")
    old = (body.get("status") or {}).get("conditions")
    patch.fns.append(_status_fn(outcome, generation, fields or {}))
    if conditions.changed(old, outcome) or event:
        normal = outcome.phase in ("ready", "idle")
        kopf.event(
            body,
            type="Normal" if normal else "Warning",
            reason=event or outcome.reason,
            message=outcome.message[:1024],
        )
    if outcome.phase == "ready":
        STATE.last_success = _now()
    elif outcome.phase != "idle":
        STATE.failures += 1
    if conditions.reason(outcome.reason).retried:
        raise kopf.TemporaryError(outcome.message, delay=conditions.backoff(retry))
    return None


def _outcome(error: BaseException) -> Outcome:
    if isinstance(error, Settle):
        return error.outcome
    if isinstance(error, ProblemError):
        return conditions.outcome_of(error)
    return Outcome("InternalError", f"unexpected {type(error).__name__}: {error}; retried with backoff")


# --- ExtensionSchema ------------------------------------------------------------------------------


def _apply(
    engine: Engine, loaded: reconcile.Loaded, peers: list[conflicts.Claim], started: Callable[[], None]
) -> tuple[list[ApplyResult], Any]:
    """Blocking: the pipeline (conflicts → dependencies → plan → apply), then the registration."""
    before = engine.registration(loaded.spec.plugin_id)
    will_change = before is None or (
        before.owner == loaded.owner and (before.checksum != loaded.spec.checksum() or before.status != "active")
    )

    def progress(_event: reconcile.MigrationEvent) -> None:
        if will_change:
            started()

    results = reconcile.reconcile(engine, [loaded], progress, peers)
    return results, engine.registration(loaded.spec.plugin_id)


@kopf.on.resume(GROUP, VERSION, SCHEMAS, id="reconcile")
@kopf.on.create(GROUP, VERSION, SCHEMAS, id="reconcile")
@kopf.on.update(GROUP, VERSION, SCHEMAS, id="reconcile")
async def reconcile_schema(
    body: kopf.Body,
    spec: Mapping[str, Any],
    meta: Mapping[str, Any],
    namespace: str | None,
    patch: kopf.Patch,
    retry: int,
    logger: Logger,
    **kwargs: Any,
) -> None:
    STATE.reconciles += 1
    namespace = namespace or ""
    claims: kopf.Index[str, ClaimEntry] = kwargs["claims"]
    targets: kopf.Index[Any, Any] = kwargs["targets"]
    fields: dict[str, Any] = {"target": (spec.get("targetRef") or {}).get("name") or DEFAULT_TARGET}
    if spec.get("suspend"):
        _track(meta, None)
        return _settle(
            body,
            patch,
            Outcome("Suspended", "spec.suspend is true: the database is left as it is"),
            fields=fields,
        )
    fingerprint: str | None = None
    key, order = DEFAULT_TARGET, ("", "")
    try:
        loaded = _parsed(body) or reconcile.from_object(dict(body), f"{namespace}/{meta.get('name')}")
        key = target_key(namespace, spec)
        order = (str(meta.get("creationTimestamp") or ""), loaded.owner)
        peers, fingerprint = peers_of(claims.get(key, ()), str(meta.get("uid")), order)
        target = await resolve_target(namespace, spec, targets)
        engine = await asyncio.to_thread(engine_for, target)
        loop = asyncio.get_running_loop()

        def started() -> None:
            loop.call_soon_threadsafe(
                lambda: kopf.event(
                    body,
                    type="Normal",
                    reason="MigrationStarted",
                    message=f"applying {loaded.spec.plugin_id} {loaded.spec.version} to {target.label}",
                )
            )

        results, registration = await asyncio.to_thread(_apply, engine, loaded, peers, started)
    except Exception as error:  # every failure is reported the same way
        outcome = _outcome(error)
        if outcome.reason == "InternalError":
            logger.exception("reconcile failed unexpectedly")
        if outcome.reason in WAITING_REASONS and fingerprint is not None:
            name = str(meta.get("name"))
            _track(meta, Waiting(namespace, name, key, order, fingerprint, time.monotonic()))
        else:
            _track(meta, None)
        event = "MigrationFailed" if outcome.reason == "MigrationFailed" else None
        return _settle(body, patch, outcome, retry=retry, fields=fields, event=event)
    _track(meta, None)
    result = results[0]
    if registration is not None:
        fields.update(
            appliedVersion=registration.version,
            appliedChecksum=registration.checksum,
            tables=list(registration.tables),
        )
    message = f"plugin {loaded.spec.plugin_id} {loaded.spec.version} applied to {target.label}"
    if result.changed:
        fields["lastMigration"] = {
            "id": result.migration_id,
            "version": loaded.spec.version,
            "changes": result.description[:4096],
            "durationMs": result.duration_ms or 0,
            "time": _now(),
        }
        message += f" (migration {result.migration_id}, {result.duration_ms} ms)"
        return _settle(body, patch, Outcome("Applied", message), fields=fields, event="MigrationSucceeded")
    old = conditions.current((body.get("status") or {}).get("conditions"))
    if old is not None and old.get("reason") == "Applied":
        message = str(old.get("message"))  # unchanged: keep the message (and avoid an event)
    return _settle(body, patch, Outcome("Applied", message), fields=fields)


@dataclasses.dataclass
class Waiting:
    """A resource waiting for others (Conflict, DependencyNotReady), as the re-check loop sees it."""

    namespace: str
    name: str
    target: str
    order: tuple[str, str]
    fingerprint: str  # of its target's other claims when it last ran
    poked: float  # time.monotonic() of its last run or poke


#: uid → waiting resource; only touched on the event loop (handlers and the re-check loop).
WAITING: dict[str, Waiting] = {}


def _track(meta: Mapping[str, Any], waiting: Waiting | None) -> None:
    uid = str(meta.get("uid"))
    if waiting is None:
        WAITING.pop(uid, None)
    else:
        WAITING[uid] = waiting


async def _poke(entry: Waiting) -> bool | None:
    """Touch an annotation (→ the update handler runs): True when done, None when the resource is
    gone, False when it must be retried at the next round."""
    info = STATE.connection
    if info is None:
        return False
    url = f"{info.server.rstrip('/')}/apis/{GROUP}/{VERSION}/namespaces/{entry.namespace}/{SCHEMAS}/{entry.name}"
    payload = json.dumps({"metadata": {"annotations": {RECHECK_ANNOTATION: _now()}}})
    try:
        session = await _session()
        async with session.patch(
            url, data=payload, headers={"Content-Type": "application/merge-patch+json"}
        ) as response:
            if response.status == 404:
                return None
            response.raise_for_status()
    except (TimeoutError, Settle, aiohttp.ClientError) as error:
        log.warning("re-check of %s/%s failed: %s", entry.namespace, entry.name, type(error).__name__)
        return False
    return True


async def _recheck_loop(claims: kopf.Index[str, ClaimEntry]) -> None:
    """Poke each waiting resource when its target's claims changed, or after the fallback interval."""
    while True:
        await asyncio.sleep(CONFIG.recheck_interval)
        try:
            await _recheck(claims)
        except Exception:  # never let the loop die: waiting resources would wait forever
            log.exception("re-check of waiting resources failed")


async def _recheck(claims: kopf.Index[str, ClaimEntry]) -> None:
    for uid, entry in list(WAITING.items()):
        _peers, fingerprint = peers_of(claims.get(entry.target, ()), uid, entry.order)
        now = time.monotonic()
        if fingerprint == entry.fingerprint and now - entry.poked <= CONFIG.recheck_fallback:
            continue
        done = await _poke(entry)
        if WAITING.get(uid) is not entry:
            continue  # reconciled meanwhile: it re-registered itself if it still waits
        if done is None:
            del WAITING[uid]
        elif done:
            entry.fingerprint, entry.poked = fingerprint, now


def _delete(engine: Engine, plugin_id: str, owner: str, retain: bool) -> ApplyResult | None:
    """Blocking: drop or unregister the plugin if this resource owns it; None when it does not."""
    registration = engine.registration(plugin_id)
    if registration is None or registration.owner != owner:
        return None  # never applied, or a conflict loser: drops nothing
    try:
        return reconcile.delete(engine, plugin_id, retain)
    except ProblemError as error:
        if {p.code for p in error.problems} == {"ES306"}:
            return None  # already gone (another run finished it)
        raise


@kopf.on.delete(GROUP, VERSION, SCHEMAS, id="cleanup")
async def cleanup_schema(
    body: kopf.Body,
    spec: Mapping[str, Any],
    meta: Mapping[str, Any],
    status: Mapping[str, Any],
    namespace: str | None,
    patch: kopf.Patch,
    retry: int,
    logger: Logger,
    **kwargs: Any,
) -> None:
    """Drop (Drop) or unregister (Retain) the plugin. Never PermanentError, never retries=/timeout=:
    kopf would remove the finalizer after a failed cleanup."""
    namespace = namespace or ""
    _track(meta, None)  # a resource being deleted waits for nothing
    targets: kopf.Index[Any, Any] = kwargs["targets"]
    plugin_id = spec.get("pluginId")
    owner = f"{namespace}/{meta.get('name')}"
    if not isinstance(plugin_id, str) or not plugin_id:
        return None
    try:
        target = await resolve_target(namespace, spec, targets)
    except Settle as error:
        if not status.get("appliedChecksum"):
            return None  # never applied and its database is unknown: nothing of ours can exist
        _cleanup_waits(body, patch, error.outcome, retry, logger)
    retain = spec.get("deletionPolicy", "Drop") == "Retain"
    try:
        engine = await asyncio.to_thread(engine_for, target)
        result = await asyncio.to_thread(_delete, engine, plugin_id, owner, retain)
    except Exception as error:
        _cleanup_waits(body, patch, _outcome(error), retry, logger)
    if result is not None:
        what = "unregistered, tables retained" if retain else "dropped (data backed up first)"
        kopf.event(body, type="Normal", reason="Deleted", message=f"plugin {plugin_id} {what}")
    return None


def _cleanup_waits(body: kopf.Body, patch: kopf.Patch, outcome: Outcome, retry: int, logger: Logger) -> NoReturn:
    """A cleanup that cannot finish now: report it and retry; the finalizer always stays."""
    if outcome.reason == "DeletionBlocked":
        _settle(body, patch, outcome, event="DeletionBlocked")
        delay = CONFIG.blocked_retry
    elif conditions.reason(outcome.reason).retried:
        if outcome.reason == "InternalError":
            logger.error("cleanup failed unexpectedly: %s", outcome.message)
        _settle(body, patch, Outcome("Deleting", f"cleanup waits ({outcome.reason}): {outcome.message}"))
        delay = conditions.backoff(retry)
    else:
        # Refused or failed in the database: a person must look; retry slowly.
        _settle(body, patch, Outcome(outcome.reason, f"cleanup failed: {outcome.message}"), event="CleanupFailed")
        delay = 60.0
    raise kopf.TemporaryError(outcome.message, delay=delay)


# --- DatabaseTarget -------------------------------------------------------------------------------


def _ping(engine: Engine) -> tuple[str, str]:
    return engine.backend, engine.ping()


async def _connect(
    body: kopf.Body,
    spec: Mapping[str, Any],
    namespace: str,
    name: str,
    patch: kopf.Patch,
    retry: int,
    raise_retry: bool,
) -> None:
    try:
        target = await target_from_spec(namespace, name, spec)
        engine = await asyncio.to_thread(engine_for, target)
        backend, version = await asyncio.to_thread(_ping, engine)
    except Exception as error:
        outcome = _outcome(error)
        try:
            return _settle(body, patch, outcome, retry=retry)
        except kopf.TemporaryError:
            if raise_retry:
                raise
            return None
    return _settle(
        body,
        patch,
        Outcome("Connected", f"connected to {backend} {version}"),
        fields={"backend": backend, "serverVersion": version},
    )


@kopf.on.resume(GROUP, VERSION, TARGETS, id="connect")
@kopf.on.create(GROUP, VERSION, TARGETS, id="connect")
@kopf.on.update(GROUP, VERSION, TARGETS, id="connect")
async def connect_target(
    body: kopf.Body,
    spec: Mapping[str, Any],
    namespace: str | None,
    name: str,
    patch: kopf.Patch,
    retry: int,
    **_: Any,
) -> None:
    return await _connect(body, spec, namespace or "", name, patch, retry, raise_retry=True)


@kopf.timer(GROUP, VERSION, TARGETS, id="ping", interval=60.0, initial_delay=60.0)
async def ping_target(
    body: kopf.Body, spec: Mapping[str, Any], namespace: str | None, name: str, patch: kopf.Patch, **_: Any
) -> None:
    with contextlib.suppress(kopf.TemporaryError):
        await _connect(body, spec, namespace or "", name, patch, 0, raise_retry=False)
