"""The readiness endpoint (``extschema run --readiness URL``): apart from kopf's liveness endpoint.

Liveness says the process runs (kopf's ``/healthz``: restarting helps when it fails). Readiness says the
operator can do its work now: it has logged in to the Kubernetes API and its default database answers. A
database that is down makes the pod unready, not restarted (a restart would not bring the database back),
and the webhook's Service stops sending admission reviews to a pod that could not check them.

With peering (``run --peering``, docs/ha.md) a standby is ready too: it can take over at any moment and it
answers admission reviews; being unready it would stall a rolling update (the new pods stand by while the old
one is active) and count as disrupted in the PodDisruptionBudget. The body says which role it has now
(``peering.role``: active, standby, or unknown when the peering object cannot be read).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from typing import TYPE_CHECKING

from aiohttp import web

from extschema.controller import peering
from extschema.controller.settings import DEFAULT_TARGET
from extschema.controller.targets import Target
from extschema.problems import ProblemError

if TYPE_CHECKING:
    from extschema.controller.runtime import Runtime

#: A database check answers within this; longer counts as not ready.
CHECK_TIMEOUT_S = 5.0
#: Probes come every few seconds from every kubelet retry: one database round trip per this many seconds.
CACHE_S = 2.0


class Readiness:
    """Serves GET PATH: 200 ``{"ready": true, ...}`` or 503 with what is not ready."""

    def __init__(self, run: Runtime, url: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "http" or not parsed.port:
            raise ValueError(f"--readiness {url!r}: give an http URL with a port, e.g. http://0.0.0.0:8081/readyz")
        self.run, self.host, self.port, self.path = run, parsed.hostname or "0.0.0.0", parsed.port, parsed.path or "/"
        self._runner: web.AppRunner | None = None
        self._checked: tuple[float, dict[str, object]] | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(self.path, self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def report(self) -> dict[str, object]:
        now = time.monotonic()
        if self._checked is not None and now - self._checked[0] < CACHE_S:
            return self._checked[1]
        checks = {"kubernetes": self._kubernetes(), "database": await self._database()}
        result: dict[str, object] = {"ready": all(c == "ok" or c == "none" for c in checks.values()), "checks": checks}
        settings = self.run.settings
        if settings.peering:  # informational: a standby is ready (see the module's docstring)
            role = await peering.role(self.run.api, settings)
            result["peering"] = {"name": settings.peering, "identity": settings.identity, "role": role}
        self._checked = (now, result)
        return result

    async def _answer(self, _request: web.Request) -> web.Response:
        report = await self.report()
        return web.Response(
            status=200 if report["ready"] else 503, text=json.dumps(report), content_type="application/json"
        )

    def _kubernetes(self) -> str:
        return "ok" if self.run.api.connection is not None else "not logged in to the Kubernetes API yet"

    async def _database(self) -> str:
        """The default database (``run --database``) answers; "none" without one (every resource names a target)."""
        url = self.run.settings.default_database
        if not url:
            return "none"
        settings = self.run.settings  # the same engine the handlers use for the default database
        engine = self.run.engines.get(
            Target(DEFAULT_TARGET, DEFAULT_TARGET, url, allow_raw_sql=settings.default_allow_raw_sql)
        )
        try:
            await asyncio.wait_for(asyncio.to_thread(engine.ping), CHECK_TIMEOUT_S)
        except TimeoutError:
            return f"the default database did not answer within {CHECK_TIMEOUT_S:g}s"
        except ProblemError as error:
            return error.problems[0].message if error.problems else "the default database is unreachable"
        return "ok"
