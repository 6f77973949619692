"""The operator's own calls to the Kubernetes API, beside kopf's: a Secret GET, a re-check poke, and the
drift loop's status writes and events (it runs outside any kopf handler, so kopf cannot write them).

kopf is not a client library; these few requests go through one aiohttp session built from the
credentials the login handler received (rebuilt when they change). The session kopf itself uses is
built here too, with a bounded connection pool.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
import kopf

from extschema import limits
from extschema.conditions import Outcome
from extschema.controller.settings import GROUP, KIND, RECHECK_ANNOTATION, SCHEMAS, TARGETS, VERSION
from extschema.controller.status import Settle, now

log = logging.getLogger("extschema.operator")


def bounded_session(info: kopf.ConnectionInfo, limit: int) -> kopf.AiohttpSession:
    """What kopf builds for a ConnectionInfo (kopf/_cogs/clients/auth.py), with a pool of *limit*.

    kopf closes it when the credentials are refreshed.
    """
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        server=info.server,
        priority=info.priority,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
        aiohttp_session=session,
    )


class KubeApi:
    """The credentials of the last login and a session for the operator's own requests."""

    def __init__(self) -> None:
        self.connection: kopf.ConnectionInfo | None = None
        self._session: aiohttp.ClientSession | None = None

    def login(self, info: kopf.ConnectionInfo) -> None:
        if info != self.connection:
            self.connection = info
            self._session = None  # rebuilt on next use with the new credentials

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _url(self, path: str) -> str:
        if self.connection is None:
            raise Settle(Outcome("TargetNotFound", "the operator has no Kubernetes credentials yet"))
        return f"{self.connection.server.rstrip('/')}{path}"

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            info = self.connection
            if info is None:
                raise Settle(Outcome("TargetNotFound", "the operator has no Kubernetes credentials yet"))
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=info.as_ssl_context()),
                headers=info.as_http_headers(),
                timeout=aiohttp.ClientTimeout(total=limits.KUBE_API_TIMEOUT_S),
            )
        return self._session

    async def read_secret(self, namespace: str, name: str, key: str) -> str:
        """One targeted GET of a Secret (RBAC: get on secrets; never list or watch)."""
        session = await self.session()
        url = self._url(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        try:
            async with session.get(url) as response:
                if response.status in (403, 404):
                    what = "does not exist" if response.status == 404 else "is not readable by the operator (RBAC)"
                    raise Settle(Outcome("TargetNotFound", f"Secret {namespace}/{name} {what}"))
                response.raise_for_status()
                secret = await response.json()
        except aiohttp.ClientError as error:
            raise Settle(
                Outcome("TargetNotFound", f"cannot read Secret {namespace}/{name}: {type(error).__name__}")
            ) from None
        data = (secret.get("data") or {}).get(key)
        if not data:
            raise Settle(Outcome("TargetNotFound", f"Secret {namespace}/{name} has no key {key!r}"))
        return base64.b64decode(data).decode("utf-8").strip()

    async def poke(self, namespace: str, name: str) -> bool | None:
        """Touch an annotation of an ExtensionSchema (→ its update handler runs): True when done, None
        when the resource is gone, False when it must be retried at the next round."""
        if self.connection is None:
            return False
        url = self._schema_url(namespace, name)
        # Microseconds: two pokes within a second must both change the object (else the second is lost).
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        payload = json.dumps({"metadata": {"annotations": {RECHECK_ANNOTATION: stamp}}})
        try:
            session = await self.session()
            async with session.patch(
                url, data=payload, headers={"Content-Type": "application/merge-patch+json"}
            ) as response:
                if response.status == 404:
                    return None
                response.raise_for_status()
        except (TimeoutError, Settle, aiohttp.ClientError) as error:
            log.warning("re-check of %s/%s failed: %s", namespace, name, type(error).__name__)
            return False
        return True

    def _schema_url(self, namespace: str, name: str, sub: str = "") -> str:
        return self._url(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{SCHEMAS}/{name}{sub}")

    async def target_labels(self, namespace: str) -> dict[str, dict[str, str]]:
        """The DatabaseTargets of *namespace* (name -> labels), read now (RBAC: list, which the operator's
        watch needs anyway). Raises aiohttp errors."""
        session = await self.session()
        async with session.get(self._url(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{TARGETS}")) as response:
            response.raise_for_status()
            listed: dict[str, Any] = await response.json()
        return {
            str(item["metadata"]["name"]): {str(k): str(v) for k, v in (item["metadata"].get("labels") or {}).items()}
            for item in listed.get("items") or []
        }

    async def served(self, group_version: str) -> set[str]:
        """The resource kinds (plural names) the API serves in *group_version* now; empty while it does not.
        Raises aiohttp errors."""
        session = await self.session()
        async with session.get(self._url(f"/apis/{group_version}")) as response:
            if response.status == 404:
                return set()
            response.raise_for_status()
            found: dict[str, Any] = await response.json()
        return {str(r.get("name")) for r in found.get("resources") or [] if "/" not in str(r.get("name"))}

    async def get_schema(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One ExtensionSchema as it is now; None when it is gone. Raises aiohttp errors."""
        session = await self.session()
        async with session.get(self._schema_url(namespace, name)) as response:
            if response.status == 404:
                return None
            response.raise_for_status()
            body: dict[str, Any] = await response.json()
            return body

    async def patch_status(
        self, namespace: str, name: str, resource_version: str, status: Mapping[str, Any]
    ) -> bool | None:
        """Merge *status* into the status subresource if the object is still at *resource_version*.

        True when written, False when the object changed meanwhile (409: read it again), None when gone.
        """
        session = await self.session()
        payload = json.dumps({"metadata": {"resourceVersion": resource_version}, "status": dict(status)})
        headers = {"Content-Type": "application/merge-patch+json"}
        async with session.patch(self._schema_url(namespace, name, "/status"), data=payload, headers=headers) as got:
            if got.status == 404:
                return None
            if got.status == 409:
                return False
            got.raise_for_status()
            return True

    async def post_event(self, involved: Mapping[str, str], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event about an ExtensionSchema (*involved*: namespace, name, uid), as kopf posts them."""
        namespace = involved["namespace"]
        stamp = now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"namespace": namespace, "generateName": f"{involved['name']}."},
            "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, **involved},
            "type": type_,
            "reason": reason,
            "message": message[: limits.MAX_EVENT_MESSAGE],
            "source": {"component": "extschema"},
            "reportingComponent": "extschema",
            "reportingInstance": "extschema",
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        session = await self.session()
        async with session.post(self._url(f"/api/v1/namespaces/{namespace}/events"), json=event) as response:
            response.raise_for_status()
