"""RFC 9457 ``application/problem+json`` for every error the API answers.

Each answer carries ``errors: [{path, code, message}]``: ``path`` names the part of the request at fault
(``body.title``, ``query.limit``, ``path.id``), ``code`` is a stable code of docs/errors.md. FastAPI's own
validation errors, Starlette's 404/405 and any unexpected exception are mapped here too: no input ends in
a bare 500 or a traceback.
"""

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from extschema.problems import CATALOG, Kind, Problem, ProblemError

MEDIA_TYPE = "application/problem+json"
_log = logging.getLogger("extschema.api")

#: HTTP status by the kind of a :class:`ProblemError` raised below the API (registry, database).
_STATUS_BY_KIND: dict[Kind, int] = {
    Kind.INVALID: 422,
    Kind.CONFLICT: 409,
    Kind.REFUSED: 409,
    Kind.DEPENDENCY: 409,
    Kind.APPROVAL: 409,
    Kind.USAGE: 422,
    Kind.DATABASE: 500,
    Kind.RETRYABLE: 503,
    Kind.UNREACHABLE: 503,
}


class ApiProblem(Exception):
    """An error answer: its status and the problems it reports (raised by handlers and dependencies)."""

    def __init__(self, status: int, problems: Sequence[Problem], headers: dict[str, str] | None = None) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.status = status
        self.problems = list(problems)
        self.headers = headers

    @classmethod
    def one(
        cls, status: int, code: str, path: str, message: str, headers: dict[str, str] | None = None
    ) -> "ApiProblem":
        return cls(status, [Problem(code, path, message)], headers)


def body(status: int, problems: Sequence[Problem], instance: str | None = None) -> dict[str, Any]:
    """The problem document: ``type`` names the first code, ``errors`` lists every problem."""
    first = problems[0]
    document: dict[str, Any] = {
        "type": f"urn:extschema:problem:{first.code}",
        "title": CATALOG[first.code],
        "status": status,
        "detail": first.message if len(problems) == 1 else f"{len(problems)} problems; see errors",
        "errors": [{"path": p.path, "code": p.code, "message": p.message} for p in problems],
    }
    if instance is not None:
        document["instance"] = instance
    return document


def response(
    status: int, problems: Sequence[Problem], request: Request | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    instance = request.url.path if request is not None else None
    return JSONResponse(body(status, problems, instance), status_code=status, media_type=MEDIA_TYPE, headers=headers)


def status_of(error: ProblemError) -> int:
    return _STATUS_BY_KIND[error.kind]


def from_error(error: ProblemError, request: Request | None = None) -> JSONResponse:
    """A problem raised below the API as its answer (an unreachable database: ES714, 503)."""
    found = error.problems
    if error.kind in (Kind.UNREACHABLE, Kind.RETRYABLE):
        found = [Problem("ES714", "database", f"the database is unavailable, retry later: {p.message}") for p in found]
    return response(status_of(error), found, request)


def _location(loc: Sequence[Any]) -> str:
    """``("body", "title")`` -> ``body.title``; list positions as ``[0]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "request"


def validation_problems(errors: Sequence[Any]) -> list[Problem]:
    """FastAPI's validation errors as ES701 (ES713 when the body is not JSON at all)."""
    problems: list[Problem] = []
    for error in errors:
        loc = list(error.get("loc", ()))
        kind = error.get("type", "")
        if kind == "json_invalid":
            problems.append(Problem("ES713", "body", "the body is not valid JSON; send a JSON object"))
            continue
        if kind == "missing" and loc == ["body"]:
            problems.append(Problem("ES701", "body", "the request needs a JSON object body"))
            continue
        message = str(error.get("msg", "invalid value"))
        if kind == "extra_forbidden":
            message = "unknown field; remove it (fields are listed in /openapi.json)"
        problems.append(Problem("ES701", _location(loc), message))
    return problems or [Problem("ES701", "request", "invalid request")]


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the request's path takes (Starlette names only the first route's)."""
    found: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, BaseRoute) and route.matches(request.scope)[0] is not Match.NONE:
            found.update(getattr(route, "methods", None) or ())
    return sorted(found)


def install(app: FastAPI) -> None:
    """Map every error to problem+json."""

    async def on_problem(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiProblem)
        return response(error.status, error.problems, request, error.headers)

    async def on_validation(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return response(422, validation_problems(error.errors()), request)

    async def on_extschema(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ProblemError)
        return from_error(error, request)

    async def on_http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        headers = dict(error.headers or {})
        if error.status_code == 404:
            problem = Problem("ES711", "path", f"nothing is served at {request.url.path}; see /openapi.json")
        elif error.status_code == 405:
            allowed = ", ".join(allowed_methods(request)) or headers.get("Allow", "")
            headers["Allow"] = allowed
            problem = Problem("ES712", "method", f"{request.method} is not allowed here; allowed: {allowed}")
        elif error.status_code == 400:  # a body FastAPI could not even decode (not UTF-8, not JSON)
            problem = Problem("ES713", "body", f"the body is not valid JSON ({error.detail}); send a JSON object")
            return response(422, [problem], request)
        else:
            problem = Problem("ES701", "request", str(error.detail))
        return response(error.status_code, [problem], request, headers)

    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        _log.exception("unexpected error answering %s %s", request.method, request.url.path)
        problem = Problem("ES715", "request", f"unexpected server error ({type(error).__name__}); see the server log")
        return response(500, [problem], request)

    app.add_exception_handler(ApiProblem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(ProblemError, on_extschema)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


#: The problem answers every operation may give, for OpenAPI (schemathesis checks responses against it).
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "errors"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["path", "code", "message"],
                "properties": {"path": {"type": "string"}, "code": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for problem answers."""
    titles = {
        400: "Bad request",
        401: "Missing or invalid token",
        403: "The token lacks the scope",
        404: "Not found",
        405: "Method not allowed",
        409: "Conflict with existing rows",
        422: "Invalid request",
        500: "Unexpected server error",
        503: "Database unavailable",
    }
    return {
        status: {"description": titles[status], "content": {MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}}}
        for status in statuses
    }
