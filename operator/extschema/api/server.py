"""Running the app with uvicorn (``extschema serve``)."""

import uvicorn

from extschema.api.app import Settings, create_app


def serve(settings: Settings, port: int, log_level: str = "info") -> None:
    """Build the app (ProblemError for bad settings, before binding) and serve it until interrupted."""
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=port, log_level=log_level, access_log=False, proxy_headers=False)
