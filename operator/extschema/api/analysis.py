"""``GET /api/v1/extensions/{pluginId}/analysis``: ``extschema analyze`` over HTTP (admin or ``PLUGIN:read``).

The same report as ``extschema analyze PLUGIN -o json`` (:mod:`extschema.engine.analysis`): the API's own
statements explained, never executed, in a transaction rolled back.
"""

from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from extschema import wire
from extschema.api import problems
from extschema.api.app import Context
from extschema.api.problems import ApiProblem
from extschema.engine import analysis

PATH = "/api/v1/extensions/{pluginId}/analysis"


def install(app: FastAPI, context: Context) -> None:
    def analyse(
        request: Request,
        pluginId: str,
        minRows: Annotated[
            int, Query(ge=0, le=analysis.MAX_MIN_ROWS, description="Leave out tables with fewer rows.")
        ] = analysis.DEFAULT_MIN_ROWS,
        verify: Annotated[bool, Query(description="Cost suggested indexes with hypopg (PostgreSQL).")] = True,
    ) -> JSONResponse:
        context.tokens.require(request, pluginId, "read")
        registered = context.engine.registration(pluginId)
        if registered is None:
            raise ApiProblem.one(
                404,
                "ES306",
                "path.pluginId",
                f"plugin {pluginId!r} is not registered; GET /api/v1/extensions lists them",
            )
        database = context.engine.database
        report = analysis.analyze_plugin(database, pluginId, registered, minRows, verify, context.catalog)
        return JSONResponse(wire.AnalysisList.of([wire.AnalysisView.model_validate(report.as_dict())]).dump())

    app.add_api_route(
        PATH,
        analyse,
        methods=["GET"],
        name="extension_analysis",
        operation_id="extension_analysis",
        tags=["extensions"],
        summary="EXPLAIN the API's statements for the plugin's tables; suggest missing indexes",
        responses=problems.responses(401, 403, 404, 409, 422, 503),
    )
