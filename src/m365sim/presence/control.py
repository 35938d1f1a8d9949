"""Control routes of the presence part: act as a person in Teams, read the full picture."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from m365sim.errors import GraphError
from m365sim.model import Tenant, User
from m365sim.presence.model import app_session_state
from m365sim.presence.requests import bad_request
from m365sim.presence.service import DEFAULT_CLIENT, has_teams
from m365sim.presence.states import CLIENT_STATES, PREFERRED_STATES, client_state, describe
from m365sim.presence.states import preferred_state as preferred_pair
from m365sim.presence.timefmt import from_us, parse_duration_us
from m365sim.presence.views import own_presence, unknown_presence

if TYPE_CHECKING:
    from m365sim.presence.service import PresenceService
    from m365sim.simulator import Simulator

TEAMS_KEYS = ("client", "signed_in", "availability", "activity", "preferred", "status_message")


def _iso(us: int | None) -> str | None:
    return None if us is None else from_us(us).isoformat().replace("+00:00", "Z")


def _find(sim: Simulator, tenant_ref: str, user_ref: str) -> tuple[Tenant, User]:
    tenant = sim.directory.find_tenant(tenant_ref)
    if tenant is None:
        raise GraphError(404, "ResourceNotFound", f"Tenant '{tenant_ref}' does not exist.")
    user = tenant.find_user(user_ref)
    if user is None:
        raise GraphError(404, "ResourceNotFound",
                         f"User '{user_ref}' does not exist in tenant '{tenant_ref}'.")
    return tenant, user


def picture(service: PresenceService, tenant: Tenant, user: User) -> dict[str, Any]:
    """Everything that makes up the user's presence now, and the aggregate Graph reports."""
    presence = service.state_of(tenant.id, user.id)
    now = service.now_us()
    assert presence.view is not None
    preferred, status = presence.preferred, presence.status
    return {
        "tenant_id": tenant.id,
        "user_id": user.id,
        "user_principal_name": user.user_principal_name,
        "teams": has_teams(user),
        "now": _iso(now),
        "clients": [{"client": name, "availability": a, "activity": b}
                    for name, (a, b) in presence.clients.items()],
        "app_sessions": [
            {"session_id": s.session_id, "availability": s.state[0], "activity": s.state[1],
             "shown": dict(zip(("availability", "activity"), app_session_state(s, now),
                               strict=True)),
             "created": _iso(s.created_at), "last_set": _iso(s.refreshed_at),
             "expires": _iso(s.expires_at)}
            for s in presence.apps.values()
        ],
        "preferred": None if preferred is None else {
            "availability": preferred.state[0], "activity": preferred.state[1],
            "set": _iso(preferred.set_at), "expires": _iso(preferred.expires_at),
            "set_by": preferred.set_by},
        "status_message": None if status is None else {
            "content": status.content, "published": _iso(status.published_at),
            "expires": _iso(status.expires_at), "set_by": status.set_by},
        "calendar_activity": presence.calendar,
        "aggregate": (own_presence(presence, presence.view) if has_teams(user)
                      else unknown_presence(user.id)),
    }


def _act(service: PresenceService, tenant: Tenant, user: User, body: dict[str, Any]) -> None:
    """Apply a Teams action body, after checking all of it."""
    for key in body:
        if key not in TEAMS_KEYS:
            raise bad_request(f"Unknown key '{key}'; allowed: {', '.join(TEAMS_KEYS)}.")
    if not has_teams(user):
        raise bad_request(f"User '{user.user_principal_name}' has no enabled Teams licence.")
    client = body.get("client", DEFAULT_CLIENT)
    if not isinstance(client, str) or not client:
        raise bad_request("'client' must be a non-empty string such as 'desktop' or 'mobile'.")
    signed_in = body.get("signed_in")
    if signed_in is not None and not isinstance(signed_in, bool):
        raise bad_request("'signed_in' must be true or false.")
    state = None
    if "availability" in body or "activity" in body:
        state = client_state(str(body.get("availability")), str(body.get("activity")))
        if state is None:
            raise bad_request("A Teams client shows one of: " + describe(CLIENT_STATES) + ".")
    preferred: tuple[tuple[str, str], int | None] | None = None
    if body.get("preferred") is not None:
        preferred = _preferred(body["preferred"])
    status = body.get("status_message")
    if status is not None and not isinstance(status, str):
        raise bad_request("'status_message' must be a string (empty or null: remove it).")

    tid, uid = tenant.id, user.id
    client_named = "client" in body
    if signed_in is False:
        service.sign_out(tid, uid, client if client_named else None)
    elif signed_in:
        service.sign_in(tid, uid, client)
    if state is not None:
        service.set_client_state(tid, uid, state, client)
    if preferred is not None:
        service.set_preferred(tid, uid, preferred[0], preferred[1], "teams")
    elif "preferred" in body:
        service.clear_preferred(tid, uid)
    if "status_message" in body:
        service.set_status_message(tid, uid, status or None, None, "teams")


def _preferred(value: Any) -> tuple[tuple[str, str], int | None]:
    if not isinstance(value, dict):
        raise bad_request("'preferred' must be an object {availability, activity, expiration} "
                          "or null.")
    state = preferred_pair(str(value.get("availability")), str(value.get("activity")))
    if state is None:
        raise bad_request("A preferred presence is one of: " + describe(PREFERRED_STATES) + ".")
    expiration = value.get("expiration")
    if expiration is None:
        return state, None
    lifetime = parse_duration_us(str(expiration))
    if lifetime is None or lifetime <= 0:
        raise bad_request(f"'preferred.expiration' must be a positive ISO 8601 duration such as "
                          f"'PT1H', not {expiration!r}.")
    return state, lifetime


def register_control_routes(app: FastAPI, sim: Simulator) -> None:
    """Add `/_sim/tenants/{tenant}/users/{user}/teams` and `.../presence`."""
    service = sim.presence

    async def act_in_teams(request: Request, tenant: str, user: str) -> JSONResponse:
        found_tenant, found_user = _find(sim, tenant, user)
        try:
            body = json.loads(await request.body() or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise bad_request("The body must be a JSON object.") from None
        if not isinstance(body, dict):
            raise bad_request("The body must be a JSON object.")
        _act(service, found_tenant, found_user, body)
        return JSONResponse(picture(service, found_tenant, found_user))

    async def read_picture(tenant: str, user: str) -> JSONResponse:
        found_tenant, found_user = _find(sim, tenant, user)
        return JSONResponse(picture(service, found_tenant, found_user))

    app.add_api_route("/_sim/tenants/{tenant}/users/{user}/teams", act_in_teams,
                      methods=["POST"])
    app.add_api_route("/_sim/tenants/{tenant}/users/{user}/presence", read_picture,
                      methods=["GET"])
