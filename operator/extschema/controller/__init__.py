"""The Kubernetes operator (kopf): ``extschema run`` calls :func:`main`; the only package importing kopf/aiohttp.

Importing the package imports no kopf: :func:`main` registers the handlers and runs kopf. One concern
per module: ``handlers`` (the kopf handlers only), ``settings``, ``runtime`` (state in kopf's memo),
``kubeapi``, ``targets``, ``claims``, ``recheck``, ``status``, ``webhook`` and ``database`` (blocking
work in threads).
"""

from __future__ import annotations

import dataclasses
import sys

from extschema.controller.settings import Settings, seconds

__all__ = ["Settings", "main", "seconds"]


def main(settings: Settings) -> None:
    """Run the operator with *settings* until it is stopped (blocks)."""
    # kopf probes for client libraries when imported and would load them (~60 MB RSS) only to offer
    # logins the operator replaces with its own; it never uses them.
    for unused in ("kubernetes", "kubernetes_asyncio", "pykube"):
        sys.modules.setdefault(unused, None)  # type: ignore[arg-type]
    import kopf

    from extschema.controller import handlers  # noqa: F401  (registers the handlers with kopf)
    from extschema.controller import logging as logs
    from extschema.controller.runtime import memo_for

    if settings.webhook_port:
        from extschema.controller import webhook  # noqa: F401  (registers the admission handler)
    if not settings.api_connections:
        settings = dataclasses.replace(settings, api_connections=settings.watch_connections())
    logs.configure(settings.log_format, settings.verbose)
    kopf.run(
        standalone=settings.standalone,
        clusterwide=settings.clusterwide,
        namespaces=list(settings.namespaces),
        liveness_endpoint=settings.liveness,
        memo=memo_for(settings),
    )
