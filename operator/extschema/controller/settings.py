"""What the operator is configured with: the API names it watches and the settings ``extschema run`` sets.

Settings are fixed before kopf starts (``extschema run`` builds them from its flags and the environment
and hands them to kopf as part of the operator's memo, see :mod:`extschema.controller.runtime`); nothing
changes them afterwards.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from typing import Any

from extschema import limits

GROUP = "extschema.io"
VERSION = "v1alpha1"
SCHEMAS = "extensionschemas"
KIND = "ExtensionSchema"
TARGETS = "databasetargets"
FINALIZER = "extschema.io/cleanup"
RECHECK_ANNOTATION = "extschema.io/recheck"
DEFAULT_TARGET = "default"
#: Reasons of resources that wait for others and are re-checked by the operator-wide loop.
WAITING_REASONS = frozenset({"Conflict", "DependencyNotReady"})


@dataclasses.dataclass
class Settings:
    """Set by ``extschema run`` before kopf starts."""

    default_database: str | None = None
    #: Whether schemas on the default database may run raw SQL steps (``--allow-raw-sql``): what
    #: ``spec.allowRawSql`` is for a DatabaseTarget, which decides for its own database.
    default_allow_raw_sql: bool = False
    #: Seconds between re-checks of waiting resources (cheap: in-memory unless something changed).
    recheck_interval: float = limits.RECHECK_INTERVAL_S
    #: Re-run a waiting resource at least this often, for changes made outside this cluster.
    recheck_fallback: float = limits.RECHECK_FALLBACK_S
    #: Delay before retrying a deletion blocked by dependents.
    blocked_retry: float = limits.BLOCKED_RETRY_S
    database_threads: int = limits.DATABASE_THREADS
    #: Connections kopf may open to the API server (0: unlimited, kopf's default). Each TLS connection
    #: costs ~300 kB (asyncio's 256 kB read buffer alone); unlimited, a burst of changes opens hundreds.
    #: Must leave room for the long-lived watch streams: ``extschema run`` sets it from the namespaces.
    api_connections: int = 0
    #: Seconds between two drift checks of one Ready resource (``--drift-interval``, $EXTSCHEMA_DRIFT_INTERVAL).
    drift_interval: float = limits.DRIFT_INTERVAL_S
    # --- observability (extschema.controller.metrics, .webhook) ---
    #: Port of the Prometheus /metrics endpoint (0: not served).
    metrics_port: int = 0
    metrics_addr: str = "0.0.0.0"
    #: Port of the validating admission webhook's HTTPS server (0: no webhook).
    webhook_port: int = 0
    webhook_addr: str = "0.0.0.0"
    #: The name or IP kube-apiserver calls the webhook at (in the generated certificate and the URL).
    webhook_host: str = "127.0.0.1"
    #: Mounted serving certificate, key and CA (cert-manager); without them one is generated.
    webhook_cert: str | None = None
    webhook_key: str | None = None
    webhook_ca: str | None = None
    # --- how kopf runs (extschema.controller.main) ---
    #: The namespaces watched (``-n``, patterns allowed), or every namespace (``clusterwide``).
    namespaces: tuple[str, ...] = ()
    clusterwide: bool = False
    #: No kopf peering: exactly one replica runs.
    standalone: bool = False
    #: Sharding (controller.sharding): this operator owns the ExtensionSchemas labeled extschema.io/shard=shard
    #: among ``shards`` operators; 1: unsharded, it owns every one.
    shard: int = 0
    shards: int = 1
    #: kopf peering (``--peering NAME``, docs/ha.md): the replicas sharing NAME run one at a time, the live one
    #: with the highest priority; None: kopf's own choice (peering "default" if it exists, else standalone).
    peering: str | None = None
    #: This replica's priority (``--priority``; None: controller.peering.default_priority, the older wins).
    priority: int | None = None
    #: How this replica appears in the peering object (set by controller.main).
    identity: str | None = None
    #: kopf's liveness endpoint, e.g. ``http://0.0.0.0:8080/healthz``.
    liveness: str | None = None
    #: The readiness endpoint (controller.readiness), e.g. ``http://0.0.0.0:8081/readyz``.
    readiness: str | None = None
    #: ``text`` or ``json`` (one object per line); ``verbose``: debug logging.
    log_format: str = "text"
    verbose: bool = False

    def watch_connections(self) -> int:
        """Connections for kopf: room for its long-lived watch streams (each watched kind per namespace,
        its peering, the CRD scan) plus ``limits.API_REQUEST_CONNECTIONS`` for requests; namespace patterns match
        an unknown number of namespaces: 0, kopf unlimited."""
        if any(any(c in ns for c in "*?!,") for ns in self.namespaces):
            return 0
        return 4 + 3 * max(1, len(self.namespaces)) + limits.API_REQUEST_CONNECTIONS

    @property
    def drift_tick(self) -> float:
        """How often the drift loop looks for resources due (cheap: in memory)."""
        return min(self.recheck_interval, self.drift_interval)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, default_database: str | None = None, **options: Any
    ) -> Settings:
        """``$EXTSCHEMA_DATABASE_URL``, ``$EXTSCHEMA_RECHECK_SECONDS`` and ``$EXTSCHEMA_DRIFT_INTERVAL``,
        then the given options on top."""
        env = os.environ if environ is None else environ
        settings = cls(
            default_database=default_database or env.get("EXTSCHEMA_DATABASE_URL") or None,
            recheck_interval=float(env.get("EXTSCHEMA_RECHECK_SECONDS", limits.RECHECK_INTERVAL_S)),
            drift_interval=seconds(env.get("EXTSCHEMA_DRIFT_INTERVAL") or f"{limits.DRIFT_INTERVAL_S}s"),
        )
        for key, value in options.items():
            if not hasattr(settings, key):
                raise TypeError(f"unknown operator setting {key!r}")
            setattr(settings, key, value)
        return settings


_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(text: str) -> float:
    """A positive duration (``30s``, ``5m``, ``1h``, ``500ms``; a bare number is seconds); ValueError otherwise."""
    match = _DURATION.match(text)
    value = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"] if match else 0.0
    if value <= 0:
        raise ValueError(f"{text!r} is not a positive duration such as 30s, 5m or 1h")
    return value
