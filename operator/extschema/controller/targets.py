"""Which database a resource goes to, read without listing Secrets, and one Engine per database.

A resource without ``spec.targetRef`` goes to the operator's default database; otherwise to the
DatabaseTarget it names (from the ``targets`` index), whose URL may sit in a Secret.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

import kopf

from extschema import limits
from extschema.conditions import Outcome
from extschema.controller.kubeapi import KubeApi
from extschema.controller.settings import DEFAULT_TARGET, Settings
from extschema.controller.status import Settle
from extschema.engine import Engine


@dataclasses.dataclass(frozen=True)
class Target:
    key: str  # "default" or "namespace/name": claims conflict only within one target
    label: str  # what status.target shows
    url: str = dataclasses.field(repr=False)  # may hold a password: never logged
    lock_timeout_ms: int = limits.DEFAULT_LOCK_TIMEOUT_MS
    statement_timeout_ms: int = limits.DEFAULT_STATEMENT_TIMEOUT_MS
    #: spec.allowRawSql: whether schemas' raw SQL steps may run here.
    allow_raw_sql: bool = False
    plugin_roles: bool = False  # spec.pluginRoles: a database role + credentials Secret per plugin


def duration_ms(text: str | None, default: int) -> int:
    """``500ms``, ``5s`` or ``2m`` in milliseconds; *default* when unset or malformed."""
    parsed = limits.parse_duration_ms(text) if text else None
    return default if parsed is None else parsed


async def target_from_spec(api: KubeApi, namespace: str, name: str, spec: Mapping[str, Any]) -> Target:
    """The database a DatabaseTarget spec names."""
    secret_ref = spec.get("urlSecretRef")
    if secret_ref:
        url = await api.read_secret(namespace, secret_ref["name"], secret_ref.get("key") or "url")
    elif spec.get("url"):
        url = str(spec["url"])
    else:
        raise Settle(Outcome("InvalidTarget", f"DatabaseTarget {namespace}/{name} sets neither url nor urlSecretRef"))
    return Target(
        key=f"{namespace}/{name}",
        label=name,
        url=url,
        lock_timeout_ms=duration_ms(spec.get("lockTimeout"), limits.DEFAULT_LOCK_TIMEOUT_MS),
        statement_timeout_ms=duration_ms(spec.get("statementTimeout"), limits.DEFAULT_STATEMENT_TIMEOUT_MS),
        allow_raw_sql=spec.get("allowRawSql") is True,
        plugin_roles=bool(spec.get("pluginRoles")),
    )


def target_key(namespace: str | None, spec: Mapping[str, Any]) -> str:
    """The key claims conflict within: ``default`` or ``namespace/name`` of the DatabaseTarget."""
    ref = spec.get("targetRef") or {}
    return f"{namespace}/{ref['name']}" if ref.get("name") else DEFAULT_TARGET


async def resolve_target(
    api: KubeApi,
    settings: Settings,
    namespace: str,
    spec: Mapping[str, Any],
    targets: kopf.Index[Any, Any],
) -> Target:
    """The target of an ExtensionSchema spec; Settle(TargetNotFound) when there is none (retried).

    Without ``spec.targetRef``, the operator's default database (*settings*: ``run --database``,
    raw SQL steps allowed with ``run --allow-raw-sql``).
    """
    ref = spec.get("targetRef") or {}
    if not ref.get("name"):
        if not settings.default_database:
            raise Settle(
                Outcome(
                    "TargetNotFound",
                    "spec.targetRef is not set and the operator has no default database (extschema run --database URL)",
                )
            )
        return Target(
            DEFAULT_TARGET, DEFAULT_TARGET, settings.default_database, allow_raw_sql=settings.default_allow_raw_sql
        )
    found = list(targets.get((namespace, ref["name"]), ()))
    if not found:
        raise Settle(
            Outcome(
                "TargetNotFound",
                f"DatabaseTarget {namespace}/{ref['name']} (spec.targetRef) does "
                "not exist; create it, or fix spec.targetRef.name",
            )
        )
    return await target_from_spec(api, namespace, ref["name"], found[0])


class Engines:
    """One Engine (and its connection pool) per database URL and timeouts, shared by all handlers.

    Used from worker threads (opening an engine may block), hence the lock.
    """

    def __init__(self) -> None:
        self._engines: dict[tuple[str, int, int, bool], Engine] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._engines)

    def get(self, target: Target) -> Engine:
        key = (target.url, target.lock_timeout_ms, target.statement_timeout_ms, target.allow_raw_sql)
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = Engine(
                    target.url,
                    lock_timeout_ms=target.lock_timeout_ms,
                    statement_timeout_ms=target.statement_timeout_ms,
                    allow_raw_sql=target.allow_raw_sql,
                    lock_timeout_setting="spec.lockTimeout of the DatabaseTarget",
                )
                self._engines[key] = engine
            return engine

    def close(self) -> None:
        with self._lock:
            engines = list(self._engines.values())
            self._engines.clear()
        for engine in engines:
            engine.close()
