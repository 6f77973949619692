"""Prometheus metrics of the REST API, served at ``/metrics`` (docs/api-management.md lists them).

- ``extschema_api_request_duration_seconds{method, route, status}``: a histogram of request durations, by route
  *template* (``/api/v1/extensions/{pluginId}/schema``, never the concrete path, so the label set stays bounded);
- ``extschema_api_statements_per_request{method, route}``: a histogram of the SQL statements each request ran.

The text format is written here (it is small): ``prometheus_client`` belongs to the operator's extra, and
``extschema serve`` must not need it. A pure ASGI middleware, so streaming responses and the route template
Starlette leaves in the scope both work; requests that match no route count as ``route="unmatched"``.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from extschema.engine import counting

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Seconds: from a cached GET by id (about 1 ms) to a migration through the management routes.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Statements: 1-2 for a read, one per relationship of an include, many for a migration.
STATEMENT_BUCKETS = (0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "unmatched"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(float(value)) if value != int(value) else f"{value:.1f}"


class Histogram:
    """One histogram family: cumulative buckets, sum and count per label set."""

    def __init__(self, name: str, help_text: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        self.name, self.help, self.labels = name, help_text, tuple(labels)
        self.buckets = tuple(buckets)
        self._series: dict[tuple[str, ...], list[float]] = {}  # counts per bucket (+Inf last), then sum
        self._lock = threading.Lock()

    def observe(self, value: float, *labels: str) -> None:
        with self._lock:
            series = self._series.setdefault(labels, [0.0] * (len(self.buckets) + 2))
            series[bisect.bisect_left(self.buckets, value)] += 1
            series[-1] += value

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        for labels, series in items:
            named = ",".join(f'{k}="{_label(v)}"' for k, v in zip(self.labels, labels, strict=True))
            running = 0.0
            for bound, count in zip((*self.buckets, float("inf")), series[:-1], strict=True):
                running += count
                lines.append(f'{self.name}_bucket{{{named},le="{_number(bound)}"}} {running:.0f}')
            lines.append(f"{self.name}_sum{{{named}}} {series[-1]!r}")
            lines.append(f"{self.name}_count{{{named}}} {running:.0f}")
        return lines


class Metrics:
    """The API's metrics; :meth:`render` is the body of ``GET /metrics``."""

    def __init__(self) -> None:
        self.duration = Histogram(
            "extschema_api_request_duration_seconds",
            "Time to answer a request, by method, route template and status.",
            ("method", "route", "status"),
            DURATION_BUCKETS,
        )
        self.statements = Histogram(
            "extschema_api_statements_per_request",
            "SQL statements a request ran, by method and route template.",
            ("method", "route"),
            STATEMENT_BUCKETS,
        )

    def render(self) -> str:
        return "\n".join([*self.duration.render(), *self.statements.render()]) + "\n"


def route_template(scope: Scope, entry_root: str = "") -> str:
    """The template of the route that answered (``/api/v1/{pluginId}/{table}/{id}``); under a mount, the
    mount's path as matched (what the mount added to ``root_path``) comes first."""
    path = getattr(scope.get("route"), "path", None)
    if not isinstance(path, str):
        return UNMATCHED
    root = str(scope.get("root_path", ""))
    return f"{root.removeprefix(entry_root)}{path}" if root.startswith(entry_root) else path


class MetricsMiddleware:
    """Time every HTTP request and count its statements; ``/metrics`` itself is left out."""

    def __init__(self, app: ASGIApp, metrics: Metrics, skip: Sequence[str] = ("/metrics",)) -> None:
        self.app, self.metrics, self.skip = app, metrics, frozenset(skip)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.skip:
            await self.app(scope, receive, send)
            return
        entry_root = str(scope.get("root_path", ""))
        status = 500  # an exception before the response started is answered 500 by the server
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        with counting.counting() as counter:
            try:
                await self.app(scope, receive, sending)
            finally:
                route, method = route_template(scope, entry_root), str(scope.get("method", ""))
                self.metrics.duration.observe(time.perf_counter() - started, method, route, str(status))
                self.metrics.statements.observe(float(counter.statements), method, route)
