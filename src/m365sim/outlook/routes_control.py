"""Control routes: create, change and cancel meetings; add, change and delete contacts.

    POST   /_sim/tenants/{tenant}/users/{user}/events               create (201, event JSON)
    PATCH  /_sim/tenants/{tenant}/users/{user}/events/{id}          change (200)
    DELETE /_sim/tenants/{tenant}/users/{user}/events/{id}[?remove=true]   cancel (200)
    GET    /_sim/tenants/{tenant}/users/{user}/calendar             events + calendar activity
    POST   /_sim/tenants/{tenant}/users/{user}/contacts             create (201, contact JSON)
    PATCH  /_sim/tenants/{tenant}/users/{user}/contacts/{id}        change (200)
    DELETE /_sim/tenants/{tenant}/users/{user}/contacts/{id}        delete (204)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from starlette.requests import Request

from m365sim.outlook.access import control_body, control_user, graph_json
from m365sim.outlook.model import Instance
from m365sim.outlook.render import contact_json, event_json, folder_json
from m365sim.outlook.service import bad_spec
from m365sim.outlook.specs import SpecError

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

BASE = "/_sim/tenants/{tenant}/users/{user}"


def register(app: FastAPI, sim: Simulator) -> None:
    """Add the outlook control routes."""

    def shown(instance: Instance) -> dict[str, object]:
        return event_json(instance, "UTC", base_url=sim.base_url)

    async def create_event(request: Request) -> JSONResponse:
        tenant, user = control_user(sim, request)
        body = await control_body(request)
        try:
            event = sim.outlook.add_event(tenant, user, body)
        except SpecError as exc:
            raise bad_spec(exc) from None
        return graph_json(shown(Instance(event, event.start, event.end)), status=201)

    async def update_event(request: Request) -> JSONResponse:
        tenant, user = control_user(sim, request)
        body = await control_body(request)
        try:
            event = sim.outlook.update_event(tenant, user, str(request.path_params["event_id"]),
                                             body)
        except SpecError as exc:
            raise bad_spec(exc) from None
        return graph_json(shown(Instance(event, event.start, event.end)))

    async def cancel_event(request: Request) -> JSONResponse:
        tenant, user = control_user(sim, request)
        remove = request.query_params.get("remove", "false").lower() in ("1", "true", "yes")
        event_id = str(request.path_params["event_id"])
        box = sim.outlook.mailbox(tenant.id, user.id)
        event = sim.outlook.cancel_event(tenant, user, event_id, remove=remove)
        removed = event_id not in box.events
        # An occurrence id names what was cancelled (its series stays).
        return graph_json({"id": event_id, "outcome": "removed" if removed else "cancelled",
                           "event": None if removed else shown(
                               Instance(event, event.start, event.end))})

    async def calendar(request: Request) -> JSONResponse:
        tenant, user = control_user(sim, request)
        box = sim.outlook.mailbox(tenant.id, user.id)
        events = sorted(box.events.values(), key=lambda e: (e.start, e.id))
        return graph_json({
            "timeZone": box.time_zone,
            "calendarActivity": sim.outlook.calendar_activity(tenant.id, user.id),
            "events": [shown(Instance(e, e.start, e.end)) for e in events],
            "contactFolders": [folder_json(f) for f in box.folders.values()],
            "contacts": len(box.contacts),
        })

    async def create_contact(request: Request) -> JSONResponse:
        tenant, user = control_user(sim, request)
        body = await control_body(request)
        try:
            contact = sim.outlook.add_contact(tenant, user, body)
        except SpecError as exc:
            raise bad_spec(exc) from None
        return graph_json(contact_json(contact), status=201)

    async def update_contact(request: Request) -> JSONResponse:
        tenant, user = control_user(sim, request)
        body = await control_body(request)
        try:
            contact = sim.outlook.update_contact(tenant, user,
                                                 str(request.path_params["contact_id"]), body)
        except SpecError as exc:
            raise bad_spec(exc) from None
        return graph_json(contact_json(contact))

    async def delete_contact(request: Request) -> Response:
        tenant, user = control_user(sim, request)
        sim.outlook.delete_contact(tenant, user, str(request.path_params["contact_id"]))
        return Response(status_code=204)

    app.add_api_route(f"{BASE}/events", create_event, methods=["POST"])
    app.add_api_route(f"{BASE}/events/{{event_id}}", update_event, methods=["PATCH"])
    app.add_api_route(f"{BASE}/events/{{event_id}}", cancel_event, methods=["DELETE"])
    app.add_api_route(f"{BASE}/calendar", calendar, methods=["GET"])
    app.add_api_route(f"{BASE}/contacts", create_contact, methods=["POST"])
    app.add_api_route(f"{BASE}/contacts/{{contact_id}}", update_contact, methods=["PATCH"])
    app.add_api_route(f"{BASE}/contacts/{{contact_id}}", delete_contact, methods=["DELETE"])

