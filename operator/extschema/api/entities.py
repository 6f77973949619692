"""Routes for every table of every active plugin: ``/api/v1/{pluginId}/{table}[/{id}]`` and enum labels.

Routes are built from the registry's snapshot (:class:`extschema.engine.entities.EntityCatalog`) with the
pydantic models of :mod:`extschema.rowmodels`, and rebuilt when the registry changes: a small middleware
asks the catalog before each API request (one query), so the next request after an apply or rollback
elsewhere sees the new tables and fields, and ``/openapi.json`` describes them, without a restart.
"""

import contextlib
import datetime
import decimal
import inspect
import json
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import pydantic
from fastapi import FastAPI, Path, Query, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from extschema import model, rowmodels
from extschema.api import problems
from extschema.api.app import Context
from extschema.engine.entities import (
    DEFAULT_LIMIT,
    ID,
    MAX_LIMIT,
    EntityError,
    EntityTable,
    Page,
    RequestTransaction,
    Snapshot,
    Sort,
)
from extschema.problems import Problem, ProblemError

PREFIX = "/api/v1"
#: Management routes (plugins, schemas, migrations) use the engine's own transactions: no entity transaction is
#: opened for them (on SQLite it would hold the write lock an apply through the API needs).
MANAGEMENT = f"{PREFIX}/extensions"
#: Where a request's :class:`RequestTransaction` waits for its handler (``request.state``).
TRANSACTION = "extschema_transaction"
#: Query parameters of a list; a filterable field with one of these names is not offered as a filter.
RESERVED_QUERY = frozenset({"limit", "after", "sort", "include"})
_STATUS = {"not_found": 404, "conflict": 409, "invalid": 422}
_ID_PATH = Annotated[int, Path(ge=1, le=2**63 - 1, description="The row's id.")]
_READ_ERRORS = problems.responses(401, 403, 404, 422, 503)
_WRITE_ERRORS = problems.responses(401, 403, 404, 409, 422, 503)


def _default(value: Any) -> Any:
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    text = json.dumps(data, default=_default, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(text, status_code=status, media_type="application/json", headers=headers)


class _Routes:
    """The entity routes of the app, swapped for new ones when the registry changes."""

    def __init__(self, app: FastAPI, context: Context) -> None:
        self.app = app
        self.context = context
        self.built_for: Snapshot | None = None
        self.routes: list[BaseRoute] = []
        self._lock = threading.Lock()

    def refresh(self, snapshot: Snapshot | None = None) -> None:
        snapshot = snapshot or self.context.catalog.snapshot()
        if snapshot is self.built_for:
            return
        with self._lock:
            if snapshot is self.built_for:
                return
            new = _build_routes(self.context, snapshot)
            old = {id(r) for r in self.routes}
            # One assignment: a request being routed sees either the old list or the new one.
            self.app.router.routes = [r for r in self.app.router.routes if id(r) not in old] + new
            self.routes = new
            self.app.openapi_schema = None
            self.built_for = snapshot


class _Refresh:
    """ASGI middleware: bring the entity routes up to date before routing an API request."""

    def __init__(self, app: ASGIApp, routes: _Routes) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith(PREFIX) and not path.startswith(MANAGEMENT):
            # The request's transaction opens here: the registry check and its statements share it.
            read_only = scope.get("method", "GET") in ("GET", "HEAD", "OPTIONS")
            try:
                transaction = await run_in_threadpool(self._open, read_only)
            except ProblemError as error:
                await problems.from_error(error)(scope, receive, send)
                return
            scope.setdefault("state", {})[TRANSACTION] = transaction
            try:
                await self.app(scope, receive, send)
            finally:
                if not transaction.closed:
                    await run_in_threadpool(transaction.close)
            return
        if path in ("/openapi.json", "/docs"):
            # /openapi.json keeps describing the last routes it knew when the database is away.
            with contextlib.suppress(ProblemError):
                await run_in_threadpool(self.routes.refresh)
        await self.app(scope, receive, send)

    def _open(self, read_only: bool) -> RequestTransaction:
        transaction, snapshot = self.routes.context.catalog.open(read_only)
        try:
            self.routes.refresh(snapshot)
        except BaseException:
            transaction.close()
            raise
        return transaction


def install(app: FastAPI, context: Context) -> None:
    routes = _Routes(app, context)
    app.add_middleware(_Refresh, routes=routes)

    async def on_entity_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, EntityError)
        return problems.response(_STATUS[error.kind], [Problem(error.code, error.path, error.message)], request)

    app.add_exception_handler(EntityError, on_entity_error)


# --- building routes ------------------------------------------------------------------------------


def _within(request: Request) -> RequestTransaction | None:
    found = getattr(request.state, TRANSACTION, None)
    return found if isinstance(found, RequestTransaction) else None


def _route(path: str, endpoint: Callable[..., Any], method: str, name: str, tag: str, **options: Any) -> APIRoute:
    return APIRoute(path, endpoint, methods=[method], name=name, operation_id=name, tags=[tag], **options)


def _signed(function: Callable[..., Any], **parameters: Any) -> Callable[..., Any]:
    """*function* with a signature FastAPI reads: ``request`` plus *parameters* (name -> annotation)."""
    params = [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)]
    for name, annotation in parameters.items():
        default = inspect.Parameter.empty
        if isinstance(annotation, tuple):
            annotation, default = annotation
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default))
    function.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return function


def _build_routes(context: Context, snapshot: Snapshot) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    plugins = sorted({plugin for plugin, _ in snapshot.tables} | set(snapshot.resolved))
    for plugin in plugins:
        for enum in snapshot.enums(plugin).values():
            routes.append(_enum_route(context, plugin, enum))
        for table in snapshot.plugin_tables(plugin):
            routes.extend(_table_routes(context, snapshot, table))
    return routes


def _iso(value: Any) -> Any:
    """Dates and timestamps in a query are ISO 8601 text (pydantic would also read a number as Unix time)."""
    if isinstance(value, str):
        try:
            datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("give an ISO 8601 date or timestamp, e.g. 2026-01-31 or 2026-01-31T10:00:00Z") from None
    return value


def _filter_type(table: EntityTable, field: str) -> Any:
    shape = rowmodels.field_shape(table.columns[field], "read")
    found = rowmodels.base_type(shape, written=False)
    if shape.kind in ("date", "datetime"):
        return Annotated[found, pydantic.BeforeValidator(_iso)]
    return found


def _query_model(snapshot: Snapshot, table: EntityTable) -> type[pydantic.BaseModel]:
    name = rowmodels.model_name(table.plugin_id, table.name, "read")
    fields: dict[str, Any] = {
        "limit": (int, pydantic.Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Rows per page.")),
        "after": (
            str | None,
            pydantic.Field(None, description="The `next` cursor of the previous page, unchanged.", max_length=2048),
        ),
    }
    if table.sortable:
        orders = tuple(o for f in (ID, *table.sortable) for o in (f, f"-{f}"))
        fields["sort"] = (
            Literal[orders] | None,
            pydantic.Field(None, description="Sort by an indexed field; `-field` sorts descending."),
        )
    includes = tuple(n for n, i in table.includes.items() if i.target in snapshot.tables)
    if includes:
        fields["include"] = (
            list[Literal[includes]],  # type: ignore[valid-type]
            pydantic.Field([], description="Embed related rows (one query per relationship)."),
        )
    for field in table.filterable:
        if field in RESERVED_QUERY:
            continue
        fields[rowmodels.attribute_name(field)] = (
            _filter_type(table, field) | None,
            pydantic.Field(None, alias=field, description=f"Only rows whose {field} equals this value."),
        )
    config = pydantic.ConfigDict(extra="forbid", validate_by_alias=True, validate_by_name=False)
    created: type[pydantic.BaseModel] = pydantic.create_model(f"{name}ListQuery", __config__=config, **fields)
    return created


def _embedded_read(snapshot: Snapshot, table: EntityTable) -> type[pydantic.BaseModel]:
    """The read model plus the relationships a list or get may embed (absent unless included)."""
    fields: dict[str, Any] = {}
    for name, include in table.includes.items():
        target = snapshot.tables.get(include.target)
        if target is None:
            continue
        read = target.models.read
        single = include.kind == "one" or include.single
        fields[rowmodels.attribute_name(name)] = (
            read | None if single else list[read],  # type: ignore[valid-type]
            pydantic.Field(None if single else [], alias=name),
        )
    if not fields:
        return table.models.read
    created: type[pydantic.BaseModel] = pydantic.create_model(
        f"{table.models.read.__name__}Embedded", __base__=table.models.read, **fields
    )
    return created


def _table_routes(context: Context, snapshot: Snapshot, table: EntityTable) -> list[BaseRoute]:
    catalog, tokens = context.catalog, context.tokens
    plugin, base = table.plugin_id, f"{PREFIX}/{table.plugin_id}/{table.name}"
    tag = plugin
    op = f"{plugin}__{table.name}"
    read = _embedded_read(snapshot, table)
    page_model = pydantic.create_model(
        f"{table.models.read.__name__}Page",
        items=(list[read], ...),  # type: ignore[valid-type]
        next=(str | None, pydantic.Field(..., description="Cursor of the next page; null on the last.")),
    )
    query_model = _query_model(snapshot, table)
    filters_by_attribute = {rowmodels.attribute_name(f): f for f in table.filterable if f not in RESERVED_QUERY}
    is_join = table.join is not None

    def includes_of(request: Request, names: Sequence[str]) -> list[str]:
        for name in names:
            tokens.require(request, table.includes[name].target[0], "read")
        return list(dict.fromkeys(names))

    def list_rows(request: Request, query: Any) -> Response:
        tokens.require(request, plugin, "read")
        values = query.model_dump()
        sort_text = values.get("sort")
        sort = Sort() if sort_text in (None, ID) else Sort.parse(sort_text)
        if sort_text == f"-{ID}":
            sort = Sort(None, True)
        filters = {
            field: values[attribute]
            for attribute, field in filters_by_attribute.items()
            if values.get(attribute) is not None
        }
        names = includes_of(request, values.get("include") or [])
        after = catalog.position(table, sort, filters, values["after"]) if values.get("after") else None
        with catalog.session(read_only=True, within=_within(request)) as session:
            page: Page = session.page(table, filters, sort, after, values["limit"])
            session.embed(snapshot, table, page.rows, names)
            request.state.statements = session.statements
        following = catalog.cursor(table, sort, filters, page.next) if page.next is not None else None
        return _json({"items": page.rows, "next": following})

    def get_row(request: Request, id: int, include: Any = None) -> Response:
        tokens.require(request, plugin, "read")
        names = includes_of(request, include or [])
        with catalog.session(read_only=True, within=_within(request)) as session:
            row = session.get(table, id)
            session.embed(snapshot, table, [row], names)
            request.state.statements = session.statements
        return _json(row)

    def create_row(request: Request, body: Any) -> Response:
        tokens.require(request, plugin, "write")
        values = body.model_dump(by_alias=True, exclude_unset=True)
        with catalog.session(within=_within(request)) as session:
            row = session.insert(table, values)
            request.state.statements = session.statements
        return _json(row, 201, {"Location": f"{base}/{row[ID]}"})

    def patch_row(request: Request, id: int, body: Any) -> Response:
        tokens.require(request, plugin, "write")
        values = body.model_dump(by_alias=True, exclude_unset=True)
        with catalog.session(within=_within(request)) as session:
            row = session.update(table, id, values)
            request.state.statements = session.statements
        return _json(row)

    def delete_row(request: Request, id: int) -> Response:
        tokens.require(request, plugin, "write")
        with catalog.session(within=_within(request)) as session:
            session.delete(table, id)
            request.state.statements = session.statements
        return Response(status_code=204)

    includes = tuple(n for n, i in table.includes.items() if i.target in snapshot.tables)
    get_parameters: dict[str, Any] = {"id": _ID_PATH}
    if includes:
        get_parameters["include"] = (
            Annotated[list[Literal[includes]], Query(description="Embed related rows.")],  # type: ignore[valid-type]
            [],
        )
    what = "link" if is_join else "row"
    ok_read = {"description": f"The {what}", "model": read}
    routes: list[BaseRoute] = [
        _route(
            base,
            _signed(list_rows, query=Annotated[query_model, Query()]),
            "GET",
            f"{op}__list",
            tag,
            summary=f"List {plugin}.{table.name} {what}s (keyset pages)",
            responses={200: {"description": "One page", "model": page_model}, **_READ_ERRORS},
        ),
        _route(
            base,
            _signed(create_row, body=table.models.create),
            "POST",
            f"{op}__create",
            tag,
            status_code=201,
            summary=f"Create a {plugin}.{table.name} {what}",
            responses={
                201: {
                    "description": f"The created {what}; Location names it",
                    "model": table.models.read,
                    "headers": {"Location": {"schema": {"type": "string"}}},
                },
                **_WRITE_ERRORS,
            },
        ),
        _route(
            f"{base}/{{id}}",
            _signed(get_row, **get_parameters),
            "GET",
            f"{op}__get",
            tag,
            summary=f"Get a {plugin}.{table.name} {what}",
            responses={200: ok_read, **_READ_ERRORS},
        ),
        _route(
            f"{base}/{{id}}",
            _signed(delete_row, id=_ID_PATH),
            "DELETE",
            f"{op}__delete",
            tag,
            status_code=204,
            summary=f"Delete a {plugin}.{table.name} {what}",
            responses={204: {"description": "Deleted"}, **_WRITE_ERRORS},
        ),
    ]
    if not is_join:
        routes.append(
            _route(
                f"{base}/{{id}}",
                _signed(patch_row, id=_ID_PATH, body=table.models.patch),
                "PATCH",
                f"{op}__patch",
                tag,
                summary=f"Change a {plugin}.{table.name} row (merge patch: absent fields stay as they are)",
                responses={200: {"description": "The changed row", "model": table.models.read}, **_WRITE_ERRORS},
            )
        )
    for route in routes:  # the handler answers itself; no response_model validation on the way out
        assert isinstance(route, APIRoute)
    return routes


# --- enum labels ----------------------------------------------------------------------------------


class EnumValue(pydantic.BaseModel):
    value: str
    label: str


class EnumLabels(pydantic.BaseModel):
    name: str
    locale: str | None = pydantic.Field(description="The localization the labels come from; null: the values.")
    values: list[EnumValue]


def preferred_locale(header: str | None, available: Sequence[str]) -> str | None:
    """The best of *available* for an ``Accept-Language`` header (exact tag, then its language), or None."""
    if not header or not available:
        return None
    wanted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            wanted.append((-quality, position, tag.strip().lower()))
    lowered = {a.lower(): a for a in available}
    for _, _, tag in sorted(wanted):
        if tag == "*":
            return None
        if tag in lowered:
            return lowered[tag]
        language = tag.split("-")[0]
        if language in lowered:
            return lowered[language]
        for key, original in lowered.items():
            if key.split("-")[0] == language:
                return original
    return None


def _enum_route(context: Context, plugin: str, enum: model.EnumSpec) -> APIRoute:
    tokens = context.tokens

    def labels(request: Request) -> Response:
        tokens.require(request, plugin, "read")
        locale = preferred_locale(request.headers.get("accept-language"), list(enum.localization))
        names = enum.localization.get(locale, {}) if locale else {}
        body = {
            "name": enum.name,
            "locale": locale,
            "values": [{"value": v, "label": names.get(v, v)} for v in enum.values],
        }
        headers = {"Vary": "Accept-Language", **({"Content-Language": locale} if locale else {})}
        return _json(body, headers=headers)

    return _route(
        f"{PREFIX}/{plugin}/enums/{enum.name}",
        _signed(labels),
        "GET",
        f"{plugin}__enum__{enum.name}",
        plugin,
        summary=f"Values of the enum {plugin}.{enum.name}, labelled for Accept-Language",
        responses={200: {"description": "Values and labels", "model": EnumLabels}, **_READ_ERRORS},
    )
