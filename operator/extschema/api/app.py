"""The FastAPI application of ``extschema serve``: :func:`create_app`.

Shells (cli, controller, api) are siblings over the same engine; this one serves every active plugin's
tables over HTTP (:mod:`extschema.api.entities`). Other routers (management, health, metrics) are added
to the app :func:`create_app` returns.
"""

import dataclasses
import ipaddress

from fastapi import FastAPI

from extschema import __version__
from extschema.api import auth, problems
from extschema.engine import Engine
from extschema.engine.entities import EntityCatalog
from extschema.problems import ProblemError

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


@dataclasses.dataclass(frozen=True)
class Settings:
    """What ``extschema serve`` is started with."""

    database_url: str
    tokens_file: str | None = None
    #: Schema-changing management routes answer 405 (the operator owns schemas: ``kubectl apply``).
    read_only_schemas: bool = False
    host: str = "127.0.0.1"


@dataclasses.dataclass
class Context:
    """What every handler reaches through ``request.app.state.extschema``."""

    settings: Settings
    engine: Engine
    catalog: EntityCatalog
    tokens: auth.Tokens

    def close(self) -> None:
        """Give back every database connection (the app's shutdown does it too)."""
        self.catalog.close()
        self.engine.close()


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def create_app(settings: Settings) -> FastAPI:
    """The application over *settings*' database; raises ProblemError (usage) for bad settings."""
    tokens = auth.Tokens.load(settings.tokens_file)
    if not tokens.enabled and not is_loopback(settings.host):
        raise ProblemError.one(
            "ES709",
            "--host",
            f"without --tokens the server only binds to loopback (127.0.0.1, ::1, localhost), not {settings.host}; "
            "give --tokens FILE to serve other hosts",
            kind="usage",
        )
    engine = Engine(settings.database_url)
    app = FastAPI(
        title="extschema",
        version=__version__,
        description="Plugin entities and extension management (docs/api.md).",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    context = Context(settings, engine, EntityCatalog(engine.database), tokens)
    app.state.extschema = context
    problems.install(app)
    from extschema.api import entities, management  # after the context: they install routes that read it

    management.install(app)  # first: /api/v1/extensions/... wins over the entity routes /api/v1/{plugin}/...
    entities.install(app, context)
    from extschema.api import analysis

    analysis.install(app, context)
    app.router.on_shutdown.append(context.close)
    return app


def context_of(app: FastAPI) -> Context:
    found = app.state.extschema
    assert isinstance(found, Context)
    return found
