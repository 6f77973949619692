"""The management routes (``/api/v1/extensions``), ``/healthz``, ``/readyz`` and ``/metrics``.

Reads need the plugin's ``PLUGIN:read`` scope (a server without ``--tokens`` lets anyone on loopback read);
validating and planning change nothing and need the same. Applying, deleting and rolling back a schema need
``admin`` and pass the same approval gate as ``extschema apply|delete|rollback``: a rewriting or destructive
plan runs only with ``?approve=HASH`` of exactly that plan, else 409 names the hash. With
``--read-only-schemas`` (the chart's default: the operator owns schemas) those three answer 405 naming
``kubectl apply``. The work itself is in :mod:`extschema.api.manage`; answers are the CLI's JSON envelopes.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from extschema import crd, limits, model
from extschema.api import manage, metrics, problems
from extschema.api.app import Context, context_of
from extschema.api.auth import ADMIN, Access
from extschema.problems import Problem, ProblemError

PREFIX = "/api/v1/extensions"
PluginId = Annotated[str, Path(alias="pluginId", max_length=63, description="The plugin's id (spec.pluginId).")]
MigrationId = Annotated[
    str, Path(alias="migrationId", max_length=64, description="A migration id, from GET .../migrations.")
]
Approve = Annotated[
    str | None,
    Query(
        max_length=128,
        description="The hash of the plan this request runs (from POST .../plan, or the 409 that asked for it): "
        "a rewriting or destructive plan runs only when it is exactly this one.",
    ),
]
Document = Annotated[
    dict[str, Any],
    Body(
        description="An ExtensionSchema document (apiVersion, kind, metadata, spec), as `kubectl apply` takes it; "
        "`status` is ignored, so what GET .../schema returns can be sent back.",
    ),
]
_READS = problems.responses(401, 403, 404, 422, 503)
_POSTS = problems.responses(400, 401, 403, 409, 422, 503)
_WRITES = problems.responses(400, 401, 403, 404, 405, 409, 422, 503)


@functools.cache
def document_body() -> dict[str, Any]:
    """The request body of validate, plan and PUT in OpenAPI: the ExtensionSchema as its CRD describes it (the
    same structural schema kube-apiserver checks; the semantic rules are answered as problems)."""
    name = {"type": "string", "minLength": 1, "maxLength": limits.MAX_RESOURCE_NAME_LENGTH}
    schema = {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"type": "string", "enum": [model.API_VERSION]},
            "kind": {"type": "string", "enum": [model.KIND]},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": name, "namespace": name},
            },
            "spec": crd.spec_schema(),
            "status": {"type": "object", "description": "Ignored (what GET .../schema adds)."},
        },
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _context(request: Request) -> Context:
    return context_of(request.app)


def _require(request: Request, plugin_id: str, access: Access) -> Context:
    context = _context(request)
    context.tokens.require(request, plugin_id, access)
    return context


def _require_all(request: Request) -> Context:
    """Reading every plugin at once: admin, or the anonymous reader of a server without tokens."""
    context = _context(request)
    principal = context.tokens.principal(request)
    if not principal.anonymous and ADMIN not in principal.scopes:
        context.tokens.require(request, "", "admin")  # answers 403 naming the scope
    return context


def _writable(request: Request, plugin_id: str, what: str) -> Context:
    """405 (naming kubectl apply) on a read-only server, before any token is looked at; then admin."""
    context = _context(request)
    manage.require_writable(context.settings.read_only_schemas, plugin_id, what)
    return _require(request, plugin_id, "admin")


# --- the routes -----------------------------------------------------------------------------------

router = APIRouter(prefix=PREFIX, tags=["management"])


@router.get("", responses=_READS, summary="Registered plugins: version, state, tables (extschema status)")
def list_extensions(request: Request) -> dict[str, Any]:
    context = _context(request)
    principal = context.tokens.principal(request)
    found = manage.extensions(context.engine)
    found["items"] = [p for p in found["items"] if principal.allows(p["pluginId"], "read")]
    return found


@router.get("/conflicts", responses=_READS, summary="Registered plugins checked again for conflicts (admin)")
def list_conflicts(request: Request) -> dict[str, Any]:
    return manage.conflicts(_require_all(request).engine)


@router.get("/{pluginId}/schema", responses=_READS, summary="The applied ExtensionSchema of a plugin")
def get_schema(request: Request, plugin_id: PluginId) -> dict[str, Any]:
    return manage.schema(_require(request, plugin_id, "read").engine, plugin_id)


@router.get("/{pluginId}/migrations", responses=_READS, summary="A plugin's migrations (extschema history)")
def get_migrations(request: Request, plugin_id: PluginId) -> dict[str, Any]:
    return manage.migrations(_require(request, plugin_id, "read").engine, plugin_id)


@router.post(
    "/{pluginId}/schema/validate",
    openapi_extra=document_body(),
    responses=_POSTS,
    summary="Validate a document; changes nothing",
)
def validate_schema(request: Request, plugin_id: PluginId, document: Document) -> dict[str, Any]:
    return manage.validate(_require(request, plugin_id, "read").engine, plugin_id, document)


@router.post(
    "/{pluginId}/plan",
    openapi_extra=document_body(),
    responses=_POSTS,
    summary="The plan of a document with its hash; runs nothing",
)
def plan_schema(request: Request, plugin_id: PluginId, document: Document) -> dict[str, Any]:
    return manage.plan(_require(request, plugin_id, "read").engine, plugin_id, document)


@router.put(
    "/{pluginId}/schema",
    openapi_extra=document_body(),
    responses=_WRITES,
    summary="Apply a document (admin; ?approve=HASH if gated)",
)
def put_schema(request: Request, plugin_id: PluginId, document: Document, approve: Approve = None) -> dict[str, Any]:
    context = _writable(request, plugin_id, "change")
    return manage.apply(context.engine, plugin_id, document, approve)


@router.delete("/{pluginId}/schema", responses=_WRITES, summary="Delete a plugin (admin; ?approve=HASH)")
def delete_schema(
    request: Request,
    plugin_id: PluginId,
    approve: Approve = None,
    retain: Annotated[
        bool | None, Query(description="Keep the tables, only unregister (default: the spec's deletionPolicy).")
    ] = None,
) -> dict[str, Any]:
    context = _writable(request, plugin_id, "delete")
    return manage.delete(context.engine, plugin_id, approve, retain)


@router.post(
    "/{pluginId}/migrations/{migrationId}/rollback",
    responses=_WRITES,
    summary="Roll back the plugin's latest migration (admin; ?approve=HASH if it drops data)",
)
def rollback_migration(
    request: Request,
    plugin_id: PluginId,
    migration_id: MigrationId,
    approve: Approve = None,
) -> dict[str, Any]:
    context = _writable(request, plugin_id, "roll back")
    return manage.rollback(context.engine, plugin_id, migration_id, approve)


# --- health and metrics ---------------------------------------------------------------------------

health = APIRouter()


@health.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, Any]:
    """Liveness: the process answers (no database: an outage must not restart the pods)."""
    return {"ok": True}


@health.get("/readyz", include_in_schema=False)
def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers a query."""
    engine = _context(request).engine
    try:
        return JSONResponse(manage.ready(engine))
    except ProblemError as error:
        why = "; ".join(p.message for p in error.problems)
        problem = Problem("ES726", "database", f"not ready: the database does not answer: {why}")
        return problems.response(503, [problem], request)


# --- errors with their own status -----------------------------------------------------------------


def _approval_response(request: Request, error: manage.ApprovalNeeded) -> JSONResponse:
    document = problems.body(409, error.problems, request.url.path)
    document["approve"] = error.approve
    document["pending"] = error.pending
    return JSONResponse(document, status_code=409, media_type=problems.MEDIA_TYPE)


def _allow(path: str) -> str:
    return "GET" if path.endswith("/schema") else ""


_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def _with_every_allowed_method(app: FastAPI) -> Callable[[Request, Exception], Awaitable[Response]]:
    """The app's answer to Starlette's errors, with a 405's ``Allow`` listing the methods of *every* route of the
    path: Starlette names those of the first route only (GET of ``.../schema``, not its PUT and DELETE)."""
    answer = app.exception_handlers[StarletteHTTPException]

    async def on_http(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        if error.status_code == 405:
            # Ask each route (included routers too) whether it would take the path with each method.
            allowed = {
                method
                for method in _METHODS
                for route in app.router.routes
                if route.matches({**request.scope, "method": method})[0] is Match.FULL
            }
            headers = {**(error.headers or {}), "Allow": ", ".join(sorted(allowed))}
            error = StarletteHTTPException(405, error.detail, headers=headers)
        response = answer(request, error)
        return await response if inspect.isawaitable(response) else response

    return on_http


def install(app: FastAPI) -> None:
    """Add the management routes, health, ``/metrics`` and the metrics middleware to *app*."""
    registry = metrics.Metrics()
    app.state.metrics = registry

    async def on_approval(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, manage.ApprovalNeeded)
        return _approval_response(request, error)

    async def on_not_found(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, manage.NotFound)
        return problems.response(404, error.problems, request)

    async def on_read_only(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, manage.ReadOnly)
        return problems.response(405, error.problems, request, {"Allow": _allow(request.url.path)})

    app.add_exception_handler(StarletteHTTPException, _with_every_allowed_method(app))
    app.add_exception_handler(manage.ApprovalNeeded, on_approval)
    app.add_exception_handler(manage.NotFound, on_not_found)
    app.add_exception_handler(manage.ReadOnly, on_read_only)
    app.include_router(router)
    app.include_router(health)

    @app.get("/metrics", include_in_schema=False)
    async def get_metrics() -> PlainTextResponse:
        return PlainTextResponse(await run_in_threadpool(registry.render), media_type=metrics.CONTENT_TYPE)

    app.add_middleware(metrics.MetricsMiddleware, metrics=registry)
