"""The Kubernetes operator (kopf): ``extschema run`` calls :func:`main`; the only package importing kopf/aiohttp.

Importing the package imports no kopf: :func:`main` registers the handlers and runs kopf. One concern
per module: ``handlers`` (the kopf handlers only), ``settings``, ``runtime`` (state in kopf's memo),
``kubeapi``, ``targets``, ``claims``, ``recheck``, ``status``, ``webhook`` and ``database`` (blocking
work in threads).
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import sys
from typing import TYPE_CHECKING

from extschema import limits
from extschema.controller.settings import Settings, seconds

if TYPE_CHECKING:
    import kopf

__all__ = ["Settings", "main", "seconds"]


def main(settings: Settings) -> None:
    """Run the operator with *settings* until it is stopped (blocks)."""
    # kopf probes for client libraries when imported and would load them (~60 MB RSS) only to offer
    # logins the operator replaces with its own; it never uses them.
    for unused in ("kubernetes", "kubernetes_asyncio", "pykube"):
        sys.modules.setdefault(unused, None)  # type: ignore[arg-type]
    _fewer_malloc_arenas()
    import kopf

    from extschema.controller import handlers  # noqa: F401  (registers the handlers with kopf)
    from extschema.controller import logging as logs
    from extschema.controller.runtime import memo_for

    if settings.webhook_port:
        from extschema.controller import webhook  # noqa: F401  (registers the admission handler)
    if not settings.api_connections:
        settings = dataclasses.replace(settings, api_connections=settings.watch_connections())
    logs.configure(settings.log_format, settings.verbose)
    kopf_settings = kopf.OperatorSettings()
    if settings.peering:
        settings = _peered(settings, kopf_settings)
    kopf.run(
        standalone=settings.standalone,
        clusterwide=settings.clusterwide,
        namespaces=list(settings.namespaces),
        liveness_endpoint=settings.liveness,
        memo=memo_for(settings),
        settings=kopf_settings,
        peering_name=settings.peering,
        priority=settings.priority,
        identity=settings.identity,  # type: ignore[arg-type]
    )


def _fewer_malloc_arenas() -> None:
    """Cap glibc's malloc arenas before any thread starts. By default each thread may get its own (up to 8 per
    core), and the database threads keep what a burst freed in theirs: ~7 MB RSS with 1,000 resources.
    ``$MALLOC_ARENA_MAX``, when set, decides instead; no-op off glibc."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_ARENA_MAX, limits.MALLOC_ARENAS)
    except (OSError, AttributeError):
        pass


_M_ARENA_MAX = -8  # glibc's malloc.h


def _peered(settings: Settings, kopf_settings: kopf.OperatorSettings) -> Settings:
    """Settings with this replica's priority and identity; the peering object exists (docs/ha.md)."""
    import asyncio

    import kopf

    from extschema.controller import peering
    from extschema.problems import ProblemError

    priority = peering.default_priority() if settings.priority is None else settings.priority
    settings = dataclasses.replace(settings, priority=priority, identity=settings.identity or peering.identity())
    # A short lifetime: a standby waits for the active replica's keep-alive to run out before it takes over.
    kopf_settings.peering.lifetime = peering.LIFETIME_S
    info = kopf.login_with_service_account(settings=kopf_settings) or kopf.login_with_kubeconfig(settings=kopf_settings)
    if info is not None:  # else kopf reports the missing credentials itself
        try:
            asyncio.run(peering.ensure(info, settings))
        except ProblemError as error:  # ES420/ES421, as the CLI prints problems; exit 3 (the Kubernetes API)
            print("\n".join(problem.render() for problem in error.problems), file=sys.stderr)
            raise SystemExit(3) from None
    return settings
