"""The operator's Prometheus metrics, served on ``/metrics`` by prometheus_client's own HTTP server.

Fed in two places only, so every metric means the same thing whatever path a reconcile took:

* the typed migration events of :func:`extschema.reconcile.reconcile` (its ``on_event`` hook) count
  migrations by result, and the database part of a reconcile is timed around it;
* :func:`extschema.controller.status.settle`, the one way a handler ends, gives each outcome: the
  condition reason of every ExtensionSchema (from which the gauges of resources by reason, pending
  approvals and conflicts are computed at scrape time) and database errors by SQLSTATE class;
* the drift loop's check (wrapped by :meth:`Metrics.drift_check`) gives the drift verdicts and its
  database errors; the admission webhook counts what it admitted and refused.

Gauges are computed when scraped from what the operator knows (a dict of uid → reason), never
incremented and decremented, so they cannot drift from the resources' status after a restart:
every resource is re-reconciled on resume and reports its reason again.

The registry is per :class:`Metrics` object (not prometheus_client's global one), kept in the
operator's memo like the rest of its state; tests build their own.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from extschema import conditions, reconcile
from extschema.problems import Kind, ProblemError

#: Kubernetes kind whose condition reasons the gauges count (DatabaseTargets have no delete handler
#: that would tell when they are gone; their connection is visible as database errors).
SCHEMA_KIND = "ExtensionSchema"
#: Condition reasons of an outcome that failed in or at the database.
DATABASE_REASONS = frozenset({"MigrationFailed", "DatabaseUnavailable"})
#: The same, as kinds of a ProblemError (the drift loop sees errors, not outcomes).
DATABASE_KINDS = frozenset({Kind.DATABASE, Kind.RETRYABLE, Kind.UNREACHABLE})
#: ``(SQLSTATE 23505)`` as :func:`extschema.engine.connection.database_message` appends it.
_SQLSTATE = re.compile(r"SQLSTATE ([0-9A-Z]{5})")
#: Reconciles take milliseconds (nothing to do) to minutes (a table rewrite).
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)


class _Verdict(Protocol):
    @property
    def in_sync(self) -> bool: ...


V = TypeVar("V", bound=_Verdict)


def sqlstate_class(message: str) -> str:
    """The SQLSTATE class (first two characters) named in a database error message, ``none`` without one
    (SQLite, a refused connection)."""
    found = _SQLSTATE.search(message)
    return found.group(1)[:2] if found else "none"


class Metrics:
    """Every metric of the operator, and what the gauges are computed from."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.reconcile_duration = Histogram(
            "extschema_reconcile_duration_seconds",
            "Time of the database part of a reconcile (conflicts, plan, approvals, apply), by result.",
            ["result"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.migrations = Counter(
            "extschema_migrations",
            "Specs a reconcile applied (applied: a migration ran; unchanged: nothing to do; failed).",
            ["result"],
            registry=self.registry,
        )
        self.database_errors = Counter(
            "extschema_database_errors",
            "Reconciles and connection checks that failed in or at the database, by SQLSTATE class "
            "(none: no SQLSTATE, e.g. SQLite or a refused connection).",
            ["sqlstate_class"],
            registry=self.registry,
        )
        self.admissions = Counter(
            "extschema_admission_reviews",
            "ExtensionSchema creates and spec changes the admission webhook checked, by result (admitted, refused).",
            ["result"],
            registry=self.registry,
        )
        self._lock = threading.Lock()  # settle runs on the event loop, scrapes in the server's thread
        self._reasons: dict[str, str] = {}  # uid → Ready reason of each ExtensionSchema
        self._drifted: dict[str, float] = {}  # uid → time.time() since its database differs
        self._last_drift_check: float | None = None
        self._server: Any = None
        self.registry.register(_Gauges(self))

    # --- feeding ---------------------------------------------------------------------------------

    def migration(self, event: reconcile.MigrationEvent) -> None:
        """The ``on_event`` hook of :func:`extschema.reconcile.reconcile` (called in worker threads)."""
        if isinstance(event, reconcile.MigrationFinished):
            self.migrations.labels("applied" if event.result.changed else "unchanged").inc()
        elif isinstance(event, reconcile.MigrationFailed):
            self.migrations.labels("failed").inc()

    @contextlib.contextmanager
    def reconciling(self) -> Iterator[None]:
        """Times the block as one reconcile: result ``ok``, or ``error`` when it raises."""
        start = time.perf_counter()
        result = "error"
        try:
            yield
            result = "ok"
        finally:
            self.reconcile_duration.labels(result).observe(time.perf_counter() - start)

    def settled(self, body: Mapping[str, Any], reason: str, message: str) -> None:
        """A handler ended with condition *reason* (called by :func:`extschema.controller.status.settle`)."""
        if reason in DATABASE_REASONS:
            self.database_errors.labels(sqlstate_class(message)).inc()
        if body.get("kind") != SCHEMA_KIND:
            return
        uid = str((body.get("metadata") or {}).get("uid"))
        with self._lock:
            self._reasons[uid] = reason
            if conditions.reason(reason).phase != "ready":
                self._drifted.pop(uid, None)  # only Ready resources are drift-checked

    def forget(self, meta: Mapping[str, Any]) -> None:
        """The resource is gone (its cleanup finished)."""
        uid = str(meta.get("uid"))
        with self._lock:
            self._reasons.pop(uid, None)
            self._drifted.pop(uid, None)

    def drifted(self, uid: str, in_sync: bool) -> None:
        """A drift check's verdict; a resource stays drifted since the first check that found differences."""
        now = time.time()
        with self._lock:
            self._last_drift_check = now
            if in_sync:
                self._drifted.pop(uid, None)
            else:
                self._drifted.setdefault(uid, now)

    def drift_check(self, check: Callable[[Any], Awaitable[V]]) -> Callable[[Any], Awaitable[V]]:
        """*check* (the drift loop's, taking an entry with a ``uid``), recording each verdict."""

        async def checked(entry: Any) -> V:
            try:
                verdict = await check(entry)
            except ProblemError as error:
                if error.kind in DATABASE_KINDS:
                    self.database_errors.labels(sqlstate_class(str(error))).inc()
                raise
            self.drifted(str(entry.uid), verdict.in_sync)
            return verdict

        return checked

    # --- reading ---------------------------------------------------------------------------------

    def snapshot(self) -> tuple[dict[str, int], list[float], float | None]:
        """Resources by reason, the times since which drifted resources differ, the last drift check."""
        with self._lock:
            counts: dict[str, int] = dict.fromkeys(conditions.CATALOG, 0)
            for reason in self._reasons.values():
                counts[reason] = counts.get(reason, 0) + 1
            return counts, list(self._drifted.values()), self._last_drift_check

    # --- serving ---------------------------------------------------------------------------------

    def serve(self, port: int, addr: str = "0.0.0.0") -> int:
        """Serve ``/metrics`` on *port* (0: any free port) in a daemon thread; returns the port.

        Idempotent: kopf re-runs a startup handler that failed later on; the server started first stays.
        """
        if self._server is not None:
            return int(self._server.server_port)
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        self._server = server
        return int(server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Gauges(Collector):
    """The gauges, computed at each scrape from what :class:`Metrics` knows."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return self._families({}, [], None)

    def collect(self) -> Iterable[Metric]:
        return self._families(*self.metrics.snapshot())

    @staticmethod
    def _families(counts: dict[str, int], drifted: list[float], last_check: float | None) -> list[Metric]:
        now = time.time()
        resources = GaugeMetricFamily(
            "extschema_resources", "ExtensionSchemas by the reason of their Ready condition.", labels=["reason"]
        )
        for reason, count in sorted(counts.items()):
            resources.add_metric([reason], count)
        approvals = GaugeMetricFamily(
            "extschema_pending_approvals", "ExtensionSchemas whose plan waits for an approval (ApprovalRequired)."
        )
        approvals.add_metric([], counts.get("ApprovalRequired", 0))
        conflicting = GaugeMetricFamily(
            "extschema_conflicts", "ExtensionSchemas that lose a conflict over a name (reason Conflict)."
        )
        conflicting.add_metric([], counts.get("Conflict", 0))
        drifted_now = GaugeMetricFamily(
            "extschema_drifted_resources", "Ready ExtensionSchemas whose database differs from the applied spec."
        )
        drifted_now.add_metric([], len(drifted))
        drift_age = GaugeMetricFamily(
            "extschema_drift_age_seconds",
            "Seconds since the longest-drifted resource's drift was first found (0: none drifted).",
        )
        drift_age.add_metric([], max((now - since for since in drifted), default=0.0))
        check_age = GaugeMetricFamily(
            "extschema_drift_check_age_seconds", "Seconds since the last drift check (-1: none yet)."
        )
        check_age.add_metric([], now - last_check if last_check is not None else -1.0)
        return [resources, approvals, conflicting, drifted_now, drift_age, check_age]
