"""``extschema serve``: the REST API over every active plugin's tables (a shell, next to cli and controller).

:func:`create_app` builds the FastAPI application from :class:`Settings`; :func:`serve` runs it with uvicorn.
"""

from extschema.api.app import Context, Settings, context_of, create_app, is_loopback


def main(
    database_url: str, *, host: str, port: int, tokens_file: str | None = None, read_only_schemas: bool = False
) -> None:
    """``extschema serve``: build the app (ProblemError for bad settings, before binding) and serve it."""
    from extschema.api import server

    settings = Settings(database_url, tokens_file=tokens_file, read_only_schemas=read_only_schemas, host=host)
    server.serve(settings, port)


__all__ = ["Context", "Settings", "context_of", "create_app", "is_loopback", "main"]
