"""The web application: Graph webhooks, the presence API, health and metrics. Routing only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from m365pbx.web.limits import install_api_errors


def create_web_app(
    routers: Sequence[APIRouter],
    *,
    health: Callable[[], dict[str, Any]],
    registry: CollectorRegistry,
    ready: Callable[[], Awaitable[dict[str, Any]]] | None = None,
) -> FastAPI:
    """The FastAPI app serving every router plus the health routes and `/metrics`.

    `/livez` answers while the process runs, `/readyz` while m365pbx itself can serve
    (`ready`), `/healthz` reports every part in words: 200 unless m365pbx is not ready,
    since a tenant's trouble with Microsoft is a red light in the report, not a reason for
    an orchestrator to restart or unroute m365pbx.
    """
    app = FastAPI(title="m365pbx", version="0.1.0", docs_url="/api/docs", redoc_url=None)
    for router in routers:
        app.include_router(router)
    install_api_errors(app)  # the API's error shape for every answer under /api/

    async def readiness() -> dict[str, Any]:
        return {"ready": True, "reasons": []} if ready is None else await ready()

    @app.get("/livez", include_in_schema=False)
    async def livez() -> JSONResponse:
        return JSONResponse({"live": True})

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        report = await readiness()
        return JSONResponse(report, status_code=200 if report["ready"] else 503)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        readiness_report = await readiness()
        report = {**health(), "ready": readiness_report["ready"]}
        return JSONResponse(report, status_code=200 if readiness_report["ready"] else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
