"""The ASGI app: Entra ID under `/{tenant}/...`, Graph under `/v1.0`, control under `/_sim`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from email.utils import format_datetime

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from m365sim import control, directory, entra, outlook, presence, subscriptions
from m365sim.auth import Caller, authenticate
from m365sim.errors import AadError, GraphError, aad_error_response, graph_error_response
from m365sim.simulator import Simulator

log = logging.getLogger("m365sim")


def graph_caller(sim: Simulator, request: Request) -> Caller:
    """The verified caller of a Graph request (raises GraphError 401)."""
    return authenticate(request, tenants=sim.directory.tenants, now=sim.clock.now(),
                        decode=sim.issuer.decode)


def create_app(sim: Simulator) -> FastAPI:
    """Build the simulator's ASGI app around `sim`."""
    app = FastAPI(title="m365sim", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sim = sim

    @app.exception_handler(GraphError)
    async def _graph_error(request: Request, exc: GraphError) -> Response:
        return graph_error_response(
            exc, now=sim.clock.now(), client_request_id=request.headers.get("client-request-id")
        )

    @app.exception_handler(AadError)
    async def _aad_error(request: Request, exc: AadError) -> Response:
        return aad_error_response(exc, now=sim.clock.now())

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        error = GraphError(400, "BadRequest", "Invalid request: " + "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        ))
        return graph_error_response(error, now=sim.clock.now())

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            error = GraphError(404, "BadRequest" if request.url.path.startswith("/v1.0") else
                               "NotFound", f"Resource not found for the segment "
                               f"'{request.url.path.rsplit('/', 1)[-1]}'.")
        elif exc.status_code == 405:
            error = GraphError(405, "Request_BadRequest",
                               "Specified HTTP method is not allowed for the request target.")
        else:
            error = GraphError(exc.status_code, "BadRequest", str(exc.detail))
        return graph_error_response(error, now=sim.clock.now())

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        # The caller hung up mid-request (a killed node, say): nobody reads the answer.
        log.info("client disconnected during %s %s", request.method, request.url.path)
        return Response(status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error in the simulator")
        error = GraphError(500, "generalException", "General exception while processing.")
        return graph_error_response(error, now=sim.clock.now())

    @app.middleware("http")
    async def _date_header(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # Every Graph and login answer carries Date (graph.md 0); from the simulator's
        # clock, optionally skewed, so clients can detect a wrong local clock.
        response = await call_next(request)
        when = sim.clock.now() + timedelta(seconds=sim.settings.date_skew_s)
        response.headers["Date"] = format_datetime(when, usegmt=True)
        return response

    sim.faults.install(app)
    for module in (entra, directory, presence, subscriptions, outlook, control):
        module.register(app, sim)
    return app
