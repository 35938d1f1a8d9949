"""Control routes of the subscriptions part: what apps subscribed, what was delivered, the
delivery faults, and lifecycle events on demand."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from m365sim.errors import GraphError
from m365sim.subscriptions.payloads import LIFECYCLE_EVENTS
from m365sim.subscriptions.settings import apply_faults

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

DEFAULT_LOG_LIMIT = 100


async def _object(request: Request) -> dict[str, Any]:
    # Any content type: control routes are for people with curl as much as for tests.
    try:
        body = json.loads(await request.body() or b"{}")
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "The body must be a JSON object.")
    return body


def register_control_routes(app: FastAPI, sim: Simulator) -> None:
    """GET /_sim/subscriptions, GET /_sim/deliveries, GET/PUT /_sim/delivery and
    POST /_sim/subscriptions/{id}/lifecycle."""
    service = sim.subscriptions

    def delivery_json() -> dict[str, Any]:
        return service.settings.faults_json(sim.settings.notification_latency_s)

    @app.get("/_sim/subscriptions")
    async def list_all() -> JSONResponse:
        now = sim.clock.now()
        live = [s for s in service.subscriptions.values() if s.live(now)]
        live.sort(key=lambda s: (s.created_at, s.id))
        return JSONResponse({"value": [s.control_json(now) for s in live]})

    @app.get("/_sim/deliveries")
    async def deliveries(request: Request) -> JSONResponse:
        raw = request.query_params.get("limit", str(DEFAULT_LOG_LIMIT))
        if not raw.isdigit():
            raise GraphError(400, "BadRequest", f"Invalid limit '{raw}': use a whole number.")
        limit = int(raw)
        log = list(service.dispatcher.log)
        return JSONResponse({"value": log[-limit:] if limit else [],
                             "delivered": service.dispatcher.delivered})

    @app.get("/_sim/delivery")
    async def get_delivery() -> JSONResponse:
        return JSONResponse(delivery_json())

    @app.put("/_sim/delivery")
    async def put_delivery(request: Request) -> JSONResponse:
        body = await _object(request)
        latency = apply_faults(service.settings, body)
        if latency is not None:
            sim.settings.notification_latency_s = latency
        if "seed" in body:
            service.dispatcher.rng.seed(service.settings.seed)
        return JSONResponse(delivery_json())

    @app.post("/_sim/subscriptions/{subscription_id}/lifecycle")
    async def lifecycle(subscription_id: str, request: Request) -> JSONResponse:
        body = await _object(request)
        event = body.get("event")
        if event not in LIFECYCLE_EVENTS:
            raise GraphError(400, "BadRequest",
                             f"'event' must be one of {', '.join(LIFECYCLE_EVENTS)}.")
        subscription = service.subscriptions.get(subscription_id)
        if subscription is None or not subscription.live(sim.clock.now()):
            raise GraphError(404, "ResourceNotFound",
                             f"The subscription '{subscription_id}' was not found.")
        if event != "reauthorizationRequired" and not subscription.target.rule.outlook:
            # graph.md 4.6: Graph sends these two only for Outlook resources (and Teams
            # chat messages, which the simulator does not have).
            raise GraphError(400, "BadRequest", f"Graph does not send '{event}' for "
                             f"{subscription.kind.value} subscriptions.")
        removed = False
        if event == "reauthorizationRequired":
            pause = body.get("pause_after_s", service.settings.reauthorization_lead_s)
            if isinstance(pause, bool) or not isinstance(pause, int | float) or pause < 0:
                raise GraphError(400, "BadRequest", "'pause_after_s' must be a number >= 0.")
            sent = service.request_reauthorization(subscription, float(pause))
        elif event == "subscriptionRemoved":
            sent, removed = service.remove_with_notice(subscription), True
        else:
            sent = service.send_lifecycle(subscription, event)
        return JSONResponse({"subscriptionId": subscription_id, "event": event, "sent": sent,
                             "removed": removed})
