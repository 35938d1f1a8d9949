"""The web application: Graph webhooks, the presence API, health and metrics. Routing only."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def create_web_app(
    routers: Sequence[APIRouter],
    *,
    health: Callable[[], dict[str, Any]],
    registry: CollectorRegistry,
) -> FastAPI:
    """The FastAPI app serving every router plus `/healthz` and `/metrics`."""
    app = FastAPI(title="m365pbx", version="0.1.0", docs_url="/api/docs", redoc_url=None)
    for router in routers:
        app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        report = health()
        return JSONResponse(report, status_code=200 if report.get("ok") else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
