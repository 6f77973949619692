"""Which database a resource goes to, read without listing Secrets, and one Engine per database.

A resource without ``spec.targetRef`` goes to the operator's default database; otherwise to the
DatabaseTarget it names (from the ``targets`` index), whose URL may sit in a Secret. The index keeps
each DatabaseTarget's typed spec (:class:`extschema.model.DatabaseTargetSpec`) and labels, parsed and
checked once per change: a malformed spec (a duration such as ``5 secs``) is an error on that target,
never a silent default.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

import kopf

from extschema import limits, model, validation
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


@dataclasses.dataclass(frozen=True)
class TargetEntry:
    """One DatabaseTarget as the ``targets`` index keeps it: typed spec and labels, or why its spec is unusable."""

    name: str
    labels: Mapping[str, str]
    spec: model.DatabaseTargetSpec | None
    #: What is wrong with the spec (problem codes, field paths); set exactly when *spec* is None.
    error: str | None = None

    @classmethod
    def of(cls, name: str, labels: Mapping[str, str] | None, spec: Mapping[str, Any]) -> TargetEntry:
        """Parse and check a DatabaseTarget spec once (its index entry)."""
        given = {str(k): str(v) for k, v in (labels or {}).items()}
        try:
            typed = model.DatabaseTargetSpec.model_validate(dict(spec))
        except model.ValidationError as error:
            wrong = "; ".join(
                f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors(include_url=False)
            )
            return cls(name, given, None, wrong)
        problems = validation.check_target(typed)
        if problems:
            return cls(name, given, None, "; ".join(f"{p.path}: {p.code}: {p.message}" for p in problems))
        return cls(name, given, typed)


def _duration_ms(namespace: str, name: str, field: str, text: str | None, default: int) -> int:
    if text is None:
        return default
    parsed = limits.parse_duration_ms(text)
    if parsed is None or parsed <= 0:
        raise Settle(
            Outcome(
                "InvalidTarget",
                f"DatabaseTarget {namespace}/{name}: spec.{field} {text!r} is not a duration; "
                "write a whole number with ms, s or m (500ms, 5s, 2m)",
            )
        )
    return parsed


async def target_from_spec(api: KubeApi, namespace: str, name: str, spec: model.DatabaseTargetSpec) -> Target:
    """The database a DatabaseTarget's typed spec names; Settle(InvalidTarget) for a malformed one."""
    lock_ms = _duration_ms(namespace, name, "lockTimeout", spec.lock_timeout, limits.DEFAULT_LOCK_TIMEOUT_MS)
    statement_ms = _duration_ms(
        namespace, name, "statementTimeout", spec.statement_timeout, limits.DEFAULT_STATEMENT_TIMEOUT_MS
    )
    if spec.url_secret_ref is not None:
        url = await api.read_secret(namespace, spec.url_secret_ref.name, spec.url_secret_ref.key or "url")
    elif spec.url:
        url = spec.url
    else:
        raise Settle(Outcome("InvalidTarget", f"DatabaseTarget {namespace}/{name} sets neither url nor urlSecretRef"))
    return Target(
        key=f"{namespace}/{name}",
        label=name,
        url=url,
        lock_timeout_ms=lock_ms,
        statement_timeout_ms=statement_ms,
        allow_raw_sql=spec.allow_raw_sql is True,
        plugin_roles=bool(spec.plugin_roles),
    )


async def target_of(api: KubeApi, namespace: str, entry: TargetEntry) -> Target:
    """The database of an indexed DatabaseTarget; Settle(InvalidTarget) naming what is wrong with its spec."""
    if entry.spec is None:
        raise Settle(
            Outcome(
                "InvalidTarget", f"DatabaseTarget {namespace}/{entry.name} is unusable: {entry.error}; fix its spec"
            )
        )
    return await target_from_spec(api, namespace, entry.name, entry.spec)


def selected(targets: kopf.Index[Any, Any], namespace: str, selector: model.LabelSelector) -> list[TargetEntry]:
    """The DatabaseTargets of *namespace* whose labels match *selector*, by name."""
    found: list[TargetEntry] = []
    for (ns, _name), entries in targets.items():
        if ns != namespace:
            continue
        found.extend(e for e in entries if isinstance(e, TargetEntry) and selector.matches(e.labels))
    return sorted(found, key=lambda e: e.name)


def indexed(targets: kopf.Index[Any, Any], namespace: str, name: str) -> TargetEntry | None:
    """The DatabaseTarget *namespace/name* from the index, None when it does not exist."""
    return next((e for e in targets.get((namespace, name), ()) if isinstance(e, TargetEntry)), None)


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
    found = indexed(targets, namespace, ref["name"])
    if found is None:
        raise Settle(
            Outcome(
                "TargetNotFound",
                f"DatabaseTarget {namespace}/{ref['name']} (spec.targetRef) does "
                "not exist; create it, or fix spec.targetRef.name",
            )
        )
    return await target_of(api, namespace, found)


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
