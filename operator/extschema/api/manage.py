"""What the management routes do, without HTTP: read the registry, validate, plan, and change schemas through
the same approval gate as ``extschema apply``, ``rollback`` and ``delete``.

Every call into reconcile/engine is here, so the routes (:mod:`extschema.api.management`) stay thin and the
lead can re-point them at ``reconcile.propose`` and the ``wire`` views in one place. The JSON shapes are those
of the CLI's ``-o json``: the envelopes of :mod:`extschema.wire` (the few lines building them mirror ``cli.py``:
shells do not import each other).

Errors are :class:`~extschema.problems.ProblemError`; :class:`ApprovalNeeded` (409) carries the plan waiting
for ``?approve=HASH``, :class:`NotFound` (404) and :class:`ReadOnly` (405) say which status they want.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from extschema import model, reconcile, wire
from extschema.engine import ApplyResult, Engine, Registration, RollbackPlan
from extschema.loading import Loaded, parse_documents
from extschema.problems import Kind, Problem, ProblemError

#: Where a request's document is reported from (the ``file`` of its problems).
BODY = "request body"
_RETRIES = 5


class NotFound(ProblemError):
    """A plugin or migration the URL names does not exist (404)."""


class ReadOnly(ProblemError):
    """``--read-only-schemas``: schema changes go through ``kubectl apply`` (405)."""


class ApprovalNeeded(ProblemError):
    """A rewriting or destructive plan without ``?approve=`` of its exact hash (409); nothing ran.

    ``pending`` are the waiting plans (as ``status.pendingPlan`` spells them), ``approve`` the hash to send.
    """

    def __init__(self, problems: Sequence[Problem], pending: Sequence[dict[str, Any]]) -> None:
        super().__init__(problems, Kind.APPROVAL)
        self.pending = list(pending)

    @property
    def approve(self) -> str | None:
        return str(self.pending[0]["hash"]) if self.pending else None


# --- views: the CLI's -o json envelopes (extschema.wire) --------------------------------------------


def applied(results: Iterable[ApplyResult]) -> dict[str, Any]:
    """What ``extschema apply|rollback|delete -o json`` prints."""
    envelope: wire.AppliedList = wire.AppliedList.of(wire.AppliedView.of(r) for r in results)
    return envelope.dump()


def pending_view(pending: object) -> dict[str, Any]:
    """A plan waiting for approval, as the CLI's failure lists it (a wire view, or the gate's record)."""
    if isinstance(pending, wire.View):
        return pending.dump()
    as_dict = getattr(pending, "as_dict", None)
    return dict(as_dict()) if callable(as_dict) else {}


def document_view(r: Registration) -> dict[str, Any]:
    """The registered schema as the ExtensionSchema document that PUT accepts back, with its state."""
    namespace, _, name = r.owner.rpartition("/")
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": model.API_VERSION,
        "kind": model.KIND,
        "metadata": metadata,
        "spec": r.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        "status": {
            "version": r.version,
            "state": r.status,
            "checksum": r.checksum,
            "tables": r.tables,
            "error": r.error_message,
            "updatedAt": wire.rfc3339(r.updated_at),
        },
    }


# --- reads ----------------------------------------------------------------------------------------


def _registration(engine: Engine, plugin_id: str) -> Registration:
    found = engine.registration(plugin_id)
    if found is None:
        raise NotFound.one(
            "ES724",
            "path.pluginId",
            f"plugin {plugin_id!r} is not registered in this database; GET /api/v1/extensions lists those that are",
            kind=Kind.USAGE,
        )
    return found


def extensions(engine: Engine) -> dict[str, Any]:
    """``GET /api/v1/extensions``: every registered plugin, its version and state (``status -o json``)."""
    envelope: wire.PluginList = wire.PluginList.of(reconcile.plugin_view(engine, r) for r in engine.registrations())
    return envelope.dump()


def schema(engine: Engine, plugin_id: str) -> dict[str, Any]:
    """``GET /api/v1/extensions/{pluginId}/schema``: the applied ExtensionSchema."""
    return document_view(_registration(engine, plugin_id))


def migrations(engine: Engine, plugin_id: str) -> dict[str, Any]:
    """``GET /api/v1/extensions/{pluginId}/migrations``: its history, oldest first (``history -o json``)."""
    records = engine.history(plugin_id)
    if not records:
        _registration(engine, plugin_id)
    envelope: wire.MigrationList = wire.MigrationList.of(wire.MigrationView.of(r) for r in records)
    return envelope.dump()


def conflicts(engine: Engine) -> dict[str, Any]:
    """``GET /api/v1/extensions/conflicts``: the registered plugins checked again against each other and the
    core tables as they are now (a core table created since can take a plugin's name)."""
    registered = engine.registrations()
    loaded = [_loaded(r.owner, r.spec, f"registered plugin {r.plugin_id}") for r in registered]
    problems = reconcile.recheck(engine, loaded)
    envelope: wire.ConflictList = wire.ConflictList.of(
        (wire.ConflictView(**wire.ProblemView.of(p).model_dump()) for p in problems), problems, ok=not problems
    )
    return envelope.dump()


# --- documents from a request ---------------------------------------------------------------------


def _loaded(owner: str, spec: model.ExtensionSchemaSpec, file: str) -> Loaded:
    namespace, _, name = owner.rpartition("/")
    document = model.ExtensionSchema.model_validate(
        {
            "apiVersion": model.API_VERSION,
            "kind": model.KIND,
            "metadata": {"name": name, "namespace": namespace or None},
            "spec": spec,
        }
    )
    return Loaded(file, document)


def document(plugin_id: str, body: object) -> Loaded:
    """The ExtensionSchema of a request body (JSON, or YAML already parsed), validated like ``extschema
    validate`` does a file; its ``spec.pluginId`` must be the URL's. ``status`` is ignored, so what ``GET
    .../schema`` returns can be sent back."""
    if not isinstance(body, dict):
        raise ProblemError.one(
            "ES727",
            "body",
            f"the body is a {type(body).__name__}; send one ExtensionSchema document as a JSON object "
            "(apiVersion, kind, metadata, spec)",
            kind=Kind.INVALID,
        )
    if body.get("kind") != model.KIND:
        raise ProblemError.one(
            "ES727",
            "body.kind",
            f"kind is {body.get('kind')!r}; send an ExtensionSchema document (kind: {model.KIND})",
            kind=Kind.INVALID,
        )
    if not isinstance(body.get("status", {}), dict):
        raise ProblemError.one(
            "ES727", "body.status", "status must be an object (it is ignored); leave it out", kind=Kind.INVALID
        )
    data = {key: body.get(key) for key in ("apiVersion", "kind", "metadata", "spec")}
    loaded, problems = parse_documents([data], BODY)
    if problems:
        raise ProblemError(problems, Kind.INVALID)
    (item,) = loaded
    if item.spec.plugin_id != plugin_id:
        raise ProblemError.one(
            "ES723",
            "body.spec.pluginId",
            f"the document is plugin {item.spec.plugin_id!r} but the URL names {plugin_id!r}; "
            f"send it to /api/v1/extensions/{item.spec.plugin_id}/...",
            kind=Kind.INVALID,
        )
    return item


# --- side-effect free: validate and plan -----------------------------------------------------------


def validate(engine: Engine, plugin_id: str, body: object) -> dict[str, Any]:
    """``POST .../schema/validate``: every rule ``extschema validate`` checks, then conflicts with the registry
    and the core tables (``extschema conflicts``); the problems are raised (422 invalid, 409 conflict)."""
    item = document(plugin_id, body)
    reconcile.check(engine, [item])
    summary = wire.SchemaView(file=item.file, name=item.owner, plugin_id=item.spec.plugin_id, version=item.spec.version)
    envelope: wire.SchemaList = wire.SchemaList.of([summary])
    return envelope.dump()


def plan(engine: Engine, plugin_id: str, body: object) -> dict[str, Any]:
    """``POST .../plan``: the plan ``extschema plan -o json`` prints for this document, with its hash; runs
    nothing (data checks are counted, read-only)."""
    item = document(plugin_id, body)
    (proposed,) = reconcile.propose(engine, [item], lint=True).items
    envelope: wire.PlanList = wire.PlanList.of([proposed.view()])
    return envelope.dump()


# --- changes: the same gate as the CLI ------------------------------------------------------------


def require_writable(read_only: bool, plugin_id: str, what: str) -> None:
    if read_only:
        raise ReadOnly.one(
            "ES722",
            "method",
            f"this server manages no schemas (--read-only-schemas): the operator does. To {what} plugin "
            f"{plugin_id!r}, change its ExtensionSchema with `kubectl apply -f FILE` (or `kubectl delete`), "
            "and approve a destructive plan with spec.approvedPlanHash",
            kind=Kind.REFUSED,
        )


def _approval_needed(error: reconcile.ApprovalRequired, plugin_id: str, action: str) -> ApprovalNeeded:
    """The gate's refusal in the API's words: ``?approve=HASH`` instead of ``--approve HASH``."""
    pending = [pending_view(p) for p in error.pending]
    problems = [
        Problem(
            "ES720",
            "query.approve",
            f"{action} plugin {plugin_id!r} is a {p['class']} plan ({p['hash']}) and needs approval: {p['summary']}; "
            f"review it, then repeat this request with ?approve={p['hash']}",
            file=None,
        )
        for p in pending
    ]
    stale = [p for p in error.problems if p.code == "ES308"]
    if stale:
        now = f"the plan is {pending[0]['hash']} now" if pending else "nothing here waits for that approval"
        problems.extend(
            Problem(
                "ES721",
                "query.approve",
                f"approve= names another plan: {now} (the schema or the database changed since it was reviewed); "
                "review it again and approve the hash it has now",
            )
            for _ in stale[:1]
        )
    return ApprovalNeeded(problems or list(error.problems), pending)


def _approvals(approve: str | None) -> tuple[str, ...]:
    return (approve,) if approve else ()


def apply(engine: Engine, plugin_id: str, body: object, approve: str | None) -> dict[str, Any]:
    """``PUT .../schema[?approve=HASH]``: ``extschema apply`` of this document (same gate and lock)."""
    item = document(plugin_id, body)
    try:
        results = reconcile.reconcile(engine, [item], lambda _event: None, approvals=_approvals(approve))
    except reconcile.ApprovalRequired as error:
        raise _approval_needed(error, plugin_id, "applying") from None
    return applied(reconcile.with_drift(engine, results))


def _not_latest(plugin_id: str, migration_id: str, undo: RollbackPlan | None) -> ProblemError:
    latest = f"its latest migration is {undo.migration_id}" if undo else "it has nothing to roll back"
    return ProblemError.one(
        "ES725",
        "path.migrationId",
        f"migration {migration_id!r} of plugin {plugin_id!r} is not the one a rollback undoes: {latest}; "
        "roll back one migration at a time, newest first",
        kind=Kind.CONFLICT,
    )


def rollback(engine: Engine, plugin_id: str, migration_id: str, approve: str | None) -> dict[str, Any]:
    """``POST .../migrations/{migrationId}/rollback[?approve=HASH]``: ``extschema rollback`` of the plugin's
    latest migration, which the URL must name (a rollback undoes exactly one: the latest)."""
    _registration(engine, plugin_id)
    if migration_id not in {r.migration_id for r in engine.history(plugin_id)}:
        raise NotFound.one(
            "ES725",
            "path.migrationId",
            f"plugin {plugin_id!r} has no migration {migration_id!r}; GET /api/v1/extensions/{plugin_id}/migrations "
            "lists them",
            kind=Kind.USAGE,
        )
    try:

        def exactly(undo: RollbackPlan | None) -> None:  # each retry checks again: the URL names what is undone
            if undo is None or undo.migration_id != migration_id:
                raise _not_latest(plugin_id, migration_id, undo)

        result = reconcile.rollback(engine, plugin_id, _approvals(approve), expect=exactly)
    except reconcile.ApprovalRequired as error:
        raise _approval_needed(error, plugin_id, "rolling back") from None
    return applied([result])


def delete(engine: Engine, plugin_id: str, approve: str | None, retain: bool | None) -> dict[str, Any]:
    """``DELETE .../schema[?approve=HASH][&retain=true]``: ``extschema delete``, gated: dropping the plugin's
    tables is a destructive plan that runs only with ``?approve=`` of its hash (its data is backed up first).
    With ``retain=true`` (or ``deletionPolicy: Retain``) the plugin is only unregistered: nothing to approve."""
    _registration(engine, plugin_id)
    try:  # the CLI's gate (reconcile.authorize_delete): the same plan, the same hash
        return applied([reconcile.delete(engine, plugin_id, retain, approvals=_approvals(approve))])
    except reconcile.ApprovalRequired as error:
        raise _approval_needed(error, plugin_id, "deleting") from None


# --- health ---------------------------------------------------------------------------------------


def ready(engine: Engine) -> dict[str, Any]:
    """``/readyz``: the database answers and its registry reads (what every route needs first)."""
    server = engine.ping()
    return {"ok": True, "database": engine.backend, "server": server, "plugins": len(engine.registrations())}
