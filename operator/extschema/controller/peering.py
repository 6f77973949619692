"""Several replicas (``extschema run --peering NAME``): kopf peering with one active replica (docs/ha.md).

kopf peering is not leader election: every replica writes a keep-alive (priority, lifetime, last seen) into
the status of one peering object, and a replica pauses while it sees a live peer with a higher or EQUAL
priority. So every replica needs its own priority (:func:`default_priority`), and the object must exist
before the replicas start (:func:`ensure`), or kopf stays paused. Double application is prevented by the
database, not by peering: a migration runs under the plugin's advisory lock and re-checks the registry
under it (a plan made from a registry that has moved since is refused as stale).
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
import random
import socket
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiohttp

from extschema import limits
from extschema.problems import ProblemError

if TYPE_CHECKING:
    import kopf

    from extschema.controller.kubeapi import KubeApi
    from extschema.controller.settings import Settings

GROUP_VERSION = "kopf.dev/v1"
#: Seconds a replica's keep-alive counts (kopf's default: 60). kopf renews it 5-10 s before it runs out
#: (at least every second), so a standby takes over at most this long after the active replica's last one.
LIFETIME_S = 10
#: Below 2**53 so that every JSON reader keeps it exact; later starts get lower priorities.
_CEILING = 2**53


def default_priority(now_s: float | None = None, draw: int | None = None) -> int:
    """The priority of a replica without ``--priority``: the older replica wins.

    Milliseconds since the epoch, times 1,000, plus three random digits, subtracted from a ceiling: a replica
    started later (a rolling update, a rescheduled pod) stands by until the active one is gone instead of
    taking over from it, and two replicas tie only when they start in the same millisecond and draw the same
    digits.
    """
    millis = int((time.time() if now_s is None else now_s) * 1000)
    digits = random.randrange(1000) if draw is None else draw  # not security
    return _CEILING - (millis * 1000 + digits)


def identity() -> str:
    """How this replica appears in the peering object: the pod's name ($POD_ID, set by the chart), else
    user@host/pid."""
    return os.environ.get("POD_ID") or f"{getpass.getuser()}@{socket.gethostname()}/{os.getpid()}"


def _path(name: str, namespace: str | None) -> str:
    if namespace is None:
        return f"/apis/{GROUP_VERSION}/clusterkopfpeerings"
    return f"/apis/{GROUP_VERSION}/namespaces/{namespace}/kopfpeerings"


def places(settings: Settings) -> list[str | None]:
    """Where the peering objects live: cluster-wide (None) or one per watched namespace (patterns: none
    known, they must be created by hand)."""
    if settings.clusterwide:
        return [None]
    return [ns for ns in settings.namespaces if not any(c in ns for c in "*?!,")]


def _problem(code: str, name: str, where: str, message: str) -> ProblemError:
    # Exit 3, like the Kubernetes API refusing `extschema wait` (ES603).
    return ProblemError.one(code, "peering", f"peering object {name!r} {where}: {message}", kind="unreachable")


async def ensure(info: kopf.ConnectionInfo, settings: Settings) -> None:
    """Create the peering object(s) when missing (kopf waits for them and would never start otherwise)."""
    name = settings.peering or ""
    timeout = aiohttp.ClientTimeout(total=limits.KUBE_API_TIMEOUT_S)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=info.as_ssl_context()), headers=info.as_http_headers(), timeout=timeout
    ) as session:
        for namespace in places(settings):
            where = f"in namespace {namespace!r}" if namespace else "(cluster-wide, ClusterKopfPeering)"
            kind = "KopfPeering" if namespace else "ClusterKopfPeering"
            body = {"apiVersion": GROUP_VERSION, "kind": kind, "metadata": {"name": name}}
            if namespace:
                body["metadata"]["namespace"] = namespace  # type: ignore[index]
            url = f"{info.server.rstrip('/')}{_path(name, namespace)}"
            try:
                async with session.post(url, data=json.dumps(body), headers={"Content-Type": "application/json"}) as r:
                    status, text = r.status, await r.text()
            except (aiohttp.ClientError, TimeoutError) as error:
                raise _problem("ES420", name, where, f"the Kubernetes API did not answer ({error})") from None
            if status in (200, 201, 409):  # 409: it exists already
                continue
            if status == 404:
                raise _problem(
                    "ES420",
                    name,
                    where,
                    "kopf's peering CRDs are not installed: kubectl apply --server-side -f crds/ (or the chart's "
                    "crds.kopfPeering), or run one replica with --standalone",
                )
            if status == 403:
                raise _problem(
                    "ES421",
                    name,
                    where,
                    f"the operator may not create it: create it yourself (apiVersion {GROUP_VERSION}, kind {kind}) "
                    "or grant create on it (the chart's RBAC does)",
                )
            raise _problem("ES420", name, where, f"the Kubernetes API answered {status}: {text[:200]}")


def role_in(status: Mapping[str, Any], me: str, priority: int, now: datetime.datetime | None = None) -> str:
    """``active`` when no other live replica has a higher or equal priority (kopf pauses on both), else
    ``standby``; mirrors kopf's rule (kopf/_core/engines/peering.py)."""
    now = now or datetime.datetime.now(datetime.UTC)
    for peer, info in status.items():
        if peer == me or not isinstance(info, Mapping):
            continue
        try:
            seen = datetime.datetime.fromisoformat(str(info["lastseen"]))
            alive = seen + datetime.timedelta(seconds=int(info.get("lifetime", 60))) > now
            if alive and int(info.get("priority", 0)) >= priority:
                return "standby"
        except (KeyError, ValueError, TypeError):
            continue
    return "active"


async def role(api: KubeApi, settings: Settings) -> str:
    """This replica's role now, read from the peering object(s): active in every one, else standby
    (``unknown`` when it cannot be read)."""
    name, me, priority = settings.peering or "", settings.identity or "", settings.priority or 0
    found = "active"
    for namespace in places(settings) or []:
        if api.connection is None:
            return "unknown"
        url = f"{api.connection.server.rstrip('/')}{_path(name, namespace)}/{name}"
        try:
            session = await api.session()
            async with session.get(url) as answer:
                if answer.status != 200:
                    return "unknown"
                status = (await answer.json()).get("status") or {}
        except Exception:  # a probe reports, never fails
            return "unknown"
        if role_in(status, me, priority) == "standby":
            found = "standby"
    return found if places(settings) else "unknown"
