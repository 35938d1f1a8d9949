"""Graph's subscription endpoints under /v1.0 (graph.md 4.1, 4.2)."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from m365sim.auth import Caller, authenticate
from m365sim.errors import GRAPH_JSON, GraphError
from m365sim.subscriptions.bodies import read_json

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

# Chosen page size of GET /subscriptions (Graph pages it; the size is not documented).
PAGE_SIZE = 100


def _caller(sim: Simulator, request: Request) -> Caller:
    return authenticate(request, tenants=sim.directory.tenants, now=sim.clock.now(),
                        decode=sim.issuer.decode)


def _answer(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=GRAPH_JSON)


def _skip(request: Request) -> int:
    token = request.query_params.get("$skiptoken")
    if token is None:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii"))
    except (ValueError, binascii.Error, UnicodeError):
        offset = -1
    if offset < 0:
        raise GraphError(400, "BadRequest", f"Invalid $skiptoken '{token}'.")
    return offset


def register_graph_routes(app: FastAPI, sim: Simulator) -> None:
    """POST/GET/PATCH/DELETE /v1.0/subscriptions and /reauthorize."""
    service = sim.subscriptions

    def entity(body: dict[str, Any]) -> dict[str, Any]:
        return {"@odata.context": f"{sim.base_url}/v1.0/$metadata#subscriptions/$entity",
                **body}

    @app.post("/v1.0/subscriptions")
    async def create_subscription(request: Request) -> Response:
        caller = _caller(sim, request)
        subscription = await service.create(caller, await read_json(request))
        return _answer(entity(subscription.graph_json(include_client_state=True)), 201)

    @app.get("/v1.0/subscriptions")
    async def list_subscriptions(request: Request) -> Response:
        caller = _caller(sim, request)
        offset = _skip(request)
        found = sorted(service.visible(caller), key=lambda s: (s.created_at, s.id))
        page = found[offset:offset + PAGE_SIZE]
        # graph.md 4.2: the list never shows clientState.
        body: dict[str, Any] = {
            "@odata.context": f"{sim.base_url}/v1.0/$metadata#subscriptions",
            "value": [s.graph_json(include_client_state=False) for s in page],
        }
        if offset + PAGE_SIZE < len(found):
            token = base64.urlsafe_b64encode(str(offset + PAGE_SIZE).encode()).decode()
            body["@odata.nextLink"] = f"{sim.base_url}/v1.0/subscriptions?$skiptoken={token}"
        return _answer(body)

    @app.get("/v1.0/subscriptions/{subscription_id}")
    async def get_subscription(subscription_id: str, request: Request) -> Response:
        caller = _caller(sim, request)
        subscription = service.owned(caller, subscription_id, write=False)
        # Chosen: GET by id shows clientState as the documentation's example does.
        return _answer(entity(subscription.graph_json(include_client_state=True)))

    @app.patch("/v1.0/subscriptions/{subscription_id}")
    async def update_subscription(subscription_id: str, request: Request) -> Response:
        caller = _caller(sim, request)
        body = await read_json(request)
        subscription = await service.update(caller, subscription_id, body)
        return _answer(entity(subscription.graph_json(include_client_state=True)))

    @app.delete("/v1.0/subscriptions/{subscription_id}")
    async def delete_subscription(subscription_id: str, request: Request) -> Response:
        service.delete(_caller(sim, request), subscription_id)
        return Response(status_code=204)

    @app.post("/v1.0/subscriptions/{subscription_id}/reauthorize")
    async def reauthorize_subscription(subscription_id: str, request: Request) -> Response:
        service.reauthorize(_caller(sim, request), subscription_id)
        return Response(status_code=204)
