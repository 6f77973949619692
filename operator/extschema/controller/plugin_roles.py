"""Per-plugin database roles, operator side: the role's credentials in a Secret next to the ExtensionSchema.

With ``spec.pluginRoles: true`` on the DatabaseTarget, every applied ExtensionSchema gets a PostgreSQL role
(:mod:`extschema.engine.roles`) and a Secret ``<resource>-db-credentials`` with ``username``, ``password``,
``schema`` and ``url``. The Secret is owned by the ExtensionSchema (ownerReference), so Kubernetes' garbage
collector removes it with the resource; the role itself is dropped by the cleanup handler.

The password already in the Secret is kept (the role is re-granted and its password re-set to it on every
reconcile), so applications reading the Secret never see it change under them. Needs ``get``, ``create`` and
``patch`` on Secrets in the resource's namespace; without them the resource reports InvalidTarget.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from extschema import reconcile
from extschema.conditions import Outcome
from extschema.controller.kubeapi import KubeApi
from extschema.controller.settings import GROUP, VERSION
from extschema.controller.status import Settle
from extschema.engine import Engine

SECRET_SUFFIX = "-db-credentials"


def secret_name(resource: str) -> str:
    return f"{resource}{SECRET_SUFFIX}"


def _failed(namespace: str, name: str, status: int | str) -> Settle:
    return Settle(
        Outcome(
            "InvalidTarget",
            f"spec.pluginRoles: cannot write Secret {namespace}/{name} ({status}); the operator needs get, create "
            "and patch on Secrets in this namespace to hand out the plugin's database credentials",
        )
    )


async def publish(api: KubeApi, engine: Engine, body: Mapping[str, Any], plugin_id: str) -> str:
    """Ensure the plugin's role and write its credentials to the resource's Secret; returns the Secret's name."""
    meta = body["metadata"]
    namespace, name = str(meta["namespace"]), secret_name(str(meta["name"]))
    if api.connection is None:
        raise Settle(Outcome("TargetNotFound", "the operator has no Kubernetes credentials yet"))
    base = f"{api.connection.server.rstrip('/')}/api/v1/namespaces/{namespace}/secrets"
    session = await api.session()
    try:
        async with session.get(f"{base}/{name}") as response:
            if response.status not in (200, 404):
                raise _failed(namespace, name, response.status)
            existing: dict[str, Any] | None = await response.json() if response.status == 200 else None
        kept = ((existing or {}).get("data") or {}).get("password")
        password = base64.b64decode(kept).decode() if kept else None
        role = await asyncio.to_thread(reconcile.ensure_role, engine, plugin_id, password)
        data = {key: base64.b64encode(value.encode()).decode() for key, value in role.secret_data().items()}
        if existing is None:
            secret = {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {"app.kubernetes.io/managed-by": "extschema", "extschema.io/plugin": plugin_id},
                    "ownerReferences": [
                        {
                            "apiVersion": f"{GROUP}/{VERSION}",
                            "kind": "ExtensionSchema",
                            "name": str(meta["name"]),
                            "uid": str(meta["uid"]),
                            "controller": True,
                        }
                    ],
                },
                "data": data,
            }
            async with session.post(base, json=secret) as response:
                if response.status not in (200, 201):
                    raise _failed(namespace, name, response.status)
        elif existing.get("data") != data:
            headers = {"Content-Type": "application/merge-patch+json"}
            async with session.patch(f"{base}/{name}", data=json.dumps({"data": data}), headers=headers) as response:
                if response.status != 200:
                    raise _failed(namespace, name, response.status)
    except aiohttp.ClientError as error:
        raise _failed(namespace, name, type(error).__name__) from None
    return name


async def revoke(engine: Engine, plugin_id: str) -> bool:
    """Drop the plugin's role (its Secret goes with the resource, by ownerReference)."""
    return await asyncio.to_thread(reconcile.drop_role, engine, plugin_id)
