"""``extschema wait NAME --for Ready``: watch one ExtensionSchema until it is Ready, Stalled, or the time is up.

A shell like the CLI (it talks to the Kubernetes API), kept out of :mod:`extschema.cli` so that the CLI starts
without it. It is meant for a plugin's init container (the plugin's pods start only once their tables exist) and
for scripts. The client is the operator's own: kopf's login functions (the pod's ServiceAccount, else
``KUBECONFIG``) and an aiohttp session, both in the image through the ``operator`` extra; imported only when the
command runs. One LIST with a field selector, then WATCHes from its resourceVersion (RBAC: list and watch on
extensionschemas in the namespace), re-listed when the watch expires or the API server says its version is gone.

A status counts only when it describes the current spec (``observedGeneration == metadata.generation``): after a
``helm upgrade`` the Ready of the previous generation is not taken for the new one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from extschema.problems import escape

GROUP, VERSION, PLURAL = "extschema.io", "v1alpha1", "extensionschemas"
#: The problem codes of a wait that did not end Ready (docs/errors.md).
STALLED, TIMED_OUT, NO_API = "ES601", "ES602", "ES603"
#: Seconds between attempts while the API server cannot be reached.
RETRY_S = 2.0


@dataclasses.dataclass(frozen=True)
class Seen:
    """What one state of the resource means for the wait: done (Ready), failed (Stalled), or a progress line."""

    ready: bool = False
    stalled: bool = False
    text: str = ""


def _conditions(body: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found = (body.get("status") or {}).get("conditions") or []
    return {c["type"]: c for c in found if isinstance(c, Mapping) and "type" in c}


def judge(body: Mapping[str, Any] | None) -> Seen:
    """Ready / Stalled / in progress of one ExtensionSchema (None: it does not exist)."""
    if body is None:
        return Seen(text="does not exist yet")
    generation = (body.get("metadata") or {}).get("generation")
    status = body.get("status") or {}
    if "deletionTimestamp" in (body.get("metadata") or {}):
        return Seen(text="is being deleted")
    if status.get("observedGeneration") != generation:
        return Seen(text=f"waiting for the operator to reconcile generation {generation}")
    conditions = _conditions(body)

    def current(kind: str) -> Mapping[str, Any] | None:
        c = conditions.get(kind)
        if c is None or c.get("status") != "True" or c.get("observedGeneration", generation) != generation:
            return None
        return c

    ready, stalled = current("Ready"), current("Stalled")
    if ready is not None:
        applied = status.get("appliedVersion")
        return Seen(ready=True, text="Ready" + (f" (version {applied})" if applied else ""))
    if stalled is not None:
        return Seen(stalled=True, text=f"Stalled: {stalled.get('reason', '')}: {stalled.get('message', '')}")
    shown = conditions.get("Reconciling") or conditions.get("Ready")
    if shown is None:
        return Seen(text="waiting for the operator")
    return Seen(text=f"{shown.get('reason', '')}: {shown.get('message', '')}")


class _Relist(Exception):
    """The watch cannot go on from its resourceVersion: list again."""


class ApiError(Exception):
    """The API server refused (401/403) or cannot be used at all: waiting longer would not help."""


@dataclasses.dataclass
class Waited:
    """How the wait ended: ``ready``, ``stalled`` or ``timeout``, with the last line seen."""

    end: str
    text: str
    namespace: str


def _login() -> Any:
    """kopf's ConnectionInfo: the ServiceAccount in a pod, else KUBECONFIG (what the operator logs in with)."""
    import sys

    # kopf probes for client libraries when imported and would load them only to offer logins we do not use.
    for unused in ("kubernetes", "kubernetes_asyncio", "pykube"):
        sys.modules.setdefault(unused, None)  # type: ignore[arg-type]
    try:
        import kopf
    except ImportError:
        raise ApiError("talking to Kubernetes needs the operator extra: pip install 'extschema[operator]'") from None

    settings = kopf.OperatorSettings()
    try:
        info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(settings=settings)
    except (OSError, KeyError, kopf.LoginError) as error:
        raise ApiError(f"cannot read the Kubernetes credentials: {type(error).__name__}: {error}") from None
    if info is None:
        raise ApiError("no Kubernetes credentials: not in a pod with a ServiceAccount token, and KUBECONFIG is unset")
    return info


async def _wait(name: str, namespace: str | None, timeout_s: float, say: Callable[[str, str], None]) -> Waited:
    import aiohttp

    info = _login()
    ns = namespace or info.default_namespace or "default"
    base = f"{info.server.rstrip('/')}/apis/{GROUP}/{VERSION}/namespaces/{quote(ns)}/{PLURAL}"
    selector = quote(f"metadata.name={name}")
    deadline = time.monotonic() + timeout_s
    last = ""

    def show(seen: Seen) -> None:
        nonlocal last
        if seen.text != last:
            last = seen.text
            say(ns, seen.text)

    def left() -> float:
        return deadline - time.monotonic()

    async def checked(response: aiohttp.ClientResponse) -> None:
        if response.status in (401, 403):
            detail = (await response.text())[:300]
            raise ApiError(
                f"the API server refused ({response.status}): {detail}; the ServiceAccount needs "
                f"get, list and watch on {PLURAL}.{GROUP} in namespace {ns}"
            )
        response.raise_for_status()

    connector = aiohttp.TCPConnector(ssl=info.as_ssl_context())
    async with aiohttp.ClientSession(connector=connector, headers=info.as_http_headers()) as session:
        while left() > 0:
            try:
                request = aiohttp.ClientTimeout(total=min(30.0, max(left(), 0.1)))
                async with session.get(f"{base}?fieldSelector={selector}", timeout=request) as response:
                    await checked(response)
                    listed = await response.json()
                items = listed.get("items") or []
                seen = judge(items[0] if items else None)
                show(seen)
                if seen.ready or seen.stalled:
                    return Waited("ready" if seen.ready else "stalled", seen.text, ns)
                version = listed["metadata"]["resourceVersion"]
                watch_s = max(1, min(int(left()) + 1, 300))
                url = f"{base}?watch=1&fieldSelector={selector}&resourceVersion={version}&timeoutSeconds={watch_s}"
                streaming = aiohttp.ClientTimeout(total=max(left(), 0.1), sock_read=None)
                async with session.get(url, timeout=streaming) as response:
                    await checked(response)
                    buffer = b""
                    async for chunk in response.content.iter_any():  # one JSON event per line, of any length
                        buffer += chunk
                        *lines, buffer = buffer.split(b"\n")
                        for event in (json.loads(line) for line in lines if line.strip()):
                            if event.get("type") == "ERROR":
                                raise _Relist  # e.g. 410 Gone: list again
                            if event.get("type") == "BOOKMARK":
                                continue
                            seen = judge(None if event.get("type") == "DELETED" else event.get("object"))
                            show(seen)
                            if seen.ready or seen.stalled:
                                return Waited("ready" if seen.ready else "stalled", seen.text, ns)
            except _Relist:
                continue
            except (aiohttp.ClientError, ValueError, TimeoutError) as error:
                if left() <= 0:
                    break  # the watch ran into the deadline
                # The API server restarting under us, a slow answer: retried until the deadline.
                show(Seen(text=f"cannot reach the Kubernetes API ({type(error).__name__}): retrying"))
                await asyncio.sleep(min(RETRY_S, max(left(), 0)))
    return Waited("timeout", last, ns)


def wait(name: str, namespace: str | None, timeout_s: float, say: Callable[[str, str], None]) -> Waited:
    """Wait for ExtensionSchema *namespace*/*name*; *say* (namespace, line) reports each new state."""
    return asyncio.run(_wait(name, namespace, timeout_s, say))


def line(namespace: str, name: str, text: str) -> str:
    """One progress line, safe for a terminal (the messages come from the resource)."""
    return f"extensionschema {escape(namespace)}/{escape(name)}: {escape(text)}"


# --- one resource, read and patched (``kubectl extschema``) -------------------------------------------


class NotFound(Exception):
    """The API server has no such object (404)."""


async def _call(
    method: str, name: str, namespace: str | None, patch: Mapping[str, Any] | None, events: bool
) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    import aiohttp

    info = _login()
    ns = namespace or info.default_namespace or "default"
    url = f"{info.server.rstrip('/')}/apis/{GROUP}/{VERSION}/namespaces/{quote(ns)}/{PLURAL}/{quote(name)}"
    connector = aiohttp.TCPConnector(ssl=info.as_ssl_context())
    timeout = aiohttp.ClientTimeout(total=30)
    try:
        async with aiohttp.ClientSession(connector=connector, headers=info.as_http_headers()) as session:

            async def send(verb: str, target: str, body: Any = None) -> Any:
                headers = {"Content-Type": "application/merge-patch+json"} if body is not None else {}
                data = None if body is None else json.dumps(body)
                async with session.request(verb, target, data=data, headers=headers, timeout=timeout) as response:
                    if response.status == 404:
                        raise NotFound(f"extensionschema {ns}/{name} not found")
                    if response.status == 409:
                        raise _Relist  # the resource changed under the patch: read it again
                    if response.status in (401, 403):
                        detail = (await response.text())[:300]
                        raise ApiError(f"the API server refused ({response.status}): {detail}")
                    if response.status >= 400:
                        detail = (await response.text())[:500]
                        raise ApiError(f"the API server answered {response.status}: {detail}")
                    return await response.json()

            body: dict[str, Any] = await send(method, url, patch)
            found: list[dict[str, Any]] = []
            if events:
                selector = quote(f"involvedObject.name={name},involvedObject.kind=ExtensionSchema")
                listed = await send(
                    "GET", f"{info.server.rstrip('/')}/api/v1/namespaces/{quote(ns)}/events?fieldSelector={selector}"
                )
                found = list(listed.get("items") or [])
            return body, found, ns
    except (aiohttp.ClientError, TimeoutError) as error:
        raise ApiError(f"cannot reach the Kubernetes API at {info.server}: {type(error).__name__}: {error}") from None


def get(name: str, namespace: str | None, events: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """ExtensionSchema *namespace*/*name* (:class:`NotFound` if none), its events when asked, and the namespace."""
    return asyncio.run(_call("GET", name, namespace, None, events))


class Changed(Exception):
    """The resource changed since it was read (its resourceVersion): read it again before patching."""


def patch(name: str, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Merge-patch ExtensionSchema *namespace*/*name*; a ``metadata.resourceVersion`` in *body* makes the patch
    conditional (:class:`Changed` when the resource moved on)."""
    try:
        patched, _, _ = asyncio.run(_call("PATCH", name, namespace, body, False))
    except _Relist:
        raise Changed(name) from None
    return patched
