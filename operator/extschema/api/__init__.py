"""``extschema serve``: the REST API over every active plugin's tables (a shell, next to cli and controller).

:func:`create_app` builds the FastAPI application from :class:`Settings`; :func:`serve` runs it with uvicorn.
"""

from extschema.api.app import Context, Settings, context_of, create_app, is_loopback

__all__ = ["Context", "Settings", "context_of", "create_app", "is_loopback"]
