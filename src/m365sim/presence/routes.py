"""Graph's presence endpoints (graph.md 3.2-3.7)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from m365sim.auth import Caller, authenticate
from m365sim.errors import GRAPH_JSON, GraphError
from m365sim.model import User
from m365sim.presence.actions import (
    parse_preferred,
    parse_session_id,
    parse_set_presence,
    parse_status_message,
)
from m365sim.presence.requests import bad_request, is_guid, read_action_body
from m365sim.presence.service import has_teams

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

# Presence is addressed by object id only: /users/{upn}/presence is refused (graph.md 3.2;
# msgraph-sdk-dotnet#1942). The status and code of that refusal are chosen.
MAX_IDS = 650  # getPresencesByUserId (graph.md 3.2)

READ_ALL = ("Presence.Read.All",)
READ_OWN = ("Presence.Read", "Presence.Read.All")
WRITE_DELEGATED = ("Presence.ReadWrite",)
WRITE_APPLICATION = ("Presence.ReadWrite.All",)


def _require(caller: Caller, *, delegated: tuple[str, ...], application: tuple[str, ...]) -> None:
    needed = delegated if caller.delegated else application
    caller.require(
        delegated=delegated, application=application, code="Forbidden",
        message=("Insufficient privileges to complete the operation. The "
                 f"{'delegated' if caller.delegated else 'application'} token needs one of: "
                 f"{', '.join(needed) or 'none (not supported with this kind of token)'}."),
    )


def _is_self(caller: Caller, user_id: str) -> bool:
    return caller.user is not None and caller.user.id.lower() == user_id.lower()


def _check_id(user_id: str) -> None:
    if not is_guid(user_id):
        raise bad_request(f"Invalid user id '{user_id}': presence is addressed by the user's "
                          "object id (a GUID), not by userPrincipalName or mail.")


def _not_found(user_id: str) -> GraphError:
    return GraphError(404, "ResourceNotFound", f"User '{user_id}' was not found in the tenant.")


def _json(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, media_type=GRAPH_JSON)


def register_graph_routes(app: FastAPI, sim: Simulator) -> None:
    """Add GET presence, getPresencesByUserId and the five presence actions."""
    service = sim.presence

    def caller_of(request: Request) -> Caller:
        return authenticate(request, tenants=sim.directory.tenants, now=sim.clock.now(),
                            decode=sim.issuer.decode)

    def context(fragment: str) -> str:
        return f"{sim.base_url}/v1.0/$metadata#{fragment}"

    def read_one(caller: Caller, user_id: str) -> dict[str, Any]:
        _check_id(user_id)
        if _is_self(caller, user_id):
            _require(caller, delegated=READ_OWN, application=READ_ALL)
        else:
            _require(caller, delegated=READ_ALL, application=READ_ALL)
        body = service.read(caller.tenant, user_id.lower(), own=_is_self(caller, user_id))
        if body is None:
            raise _not_found(user_id)
        return body

    async def get_my_presence(request: Request) -> Response:
        caller = caller_of(request)
        if caller.user is None:
            raise bad_request("/me request is only valid with delegated authentication flow.")
        body = read_one(caller, caller.user.id)
        return _json({"@odata.context": context(f"users('{caller.user.id}')/presence/$entity"),
                      **body})

    async def get_user_presence(request: Request, user_id: str) -> Response:
        body = read_one(caller_of(request), user_id)
        return _json({"@odata.context": context(f"users('{body['id']}')/presence/$entity"),
                      **body})

    async def get_communications_presence(request: Request, user_id: str) -> Response:
        body = read_one(caller_of(request), user_id)
        return _json({"@odata.context": context("communications/presences/$entity"), **body})

    async def get_presences_by_user_id(request: Request) -> Response:
        caller = caller_of(request)
        _require(caller, delegated=READ_ALL, application=READ_ALL)
        data = await read_action_body(request, "getPresencesByUserId", ("ids",))
        ids = data.get("ids")
        if not isinstance(ids, list):
            raise bad_request("The parameter 'ids' is required for the operation "
                              "'getPresencesByUserId' and must be an array of user object ids.")
        if len(ids) > MAX_IDS:
            raise bad_request(f"Too many user ids: {len(ids)} were given and at most {MAX_IDS} "
                              "are supported per request.")
        wanted: dict[str, None] = {}
        for user_id in ids:
            if not isinstance(user_id, str) or not is_guid(user_id):
                raise bad_request(f"Invalid user id {user_id!r} in 'ids': each must be a user's "
                                  "object id (a GUID).")
            wanted[user_id.lower()] = None
        value = service.read_many(caller.tenant, wanted)
        return _json({"@odata.context": context("Collection(microsoft.graph.presence)"),
                      "value": value})

    def writable_target(caller: Caller, user_id: str) -> User:
        """The user an action writes to, after permission and id checks."""
        _require(caller, delegated=WRITE_DELEGATED, application=WRITE_APPLICATION)
        _check_id(user_id)
        if caller.delegated and not _is_self(caller, user_id):
            # Presence.ReadWrite acts for the signed-in user only (there is no delegated
            # Presence.ReadWrite.All); writing someone else's presence is refused (chosen).
            raise GraphError(403, "Forbidden", "A delegated token can only change the signed-in "
                             "user's own presence.")
        user = caller.tenant.users.get(user_id.lower())
        if user is None or user.deleted or not has_teams(user):
            raise _not_found(user_id)
        return user

    def written_by(caller: Caller) -> str:
        if caller.user is None:
            return f"app {caller.app.app_id}"
        return f"{caller.user.user_principal_name} via app {caller.app.app_id}"

    async def set_presence(request: Request, user_id: str) -> Response:
        caller = caller_of(request)
        user = writable_target(caller, user_id)
        data = await read_action_body(
            request, "setPresence", ("sessionId", "availability", "activity", "expirationDuration"))
        session_id, state, lifetime = parse_set_presence(data, caller.app.app_id)
        service.set_presence(caller.tenant.id, user.id, session_id, state, lifetime)
        return Response(status_code=200)

    async def clear_presence(request: Request, user_id: str) -> Response:
        caller = caller_of(request)
        user = writable_target(caller, user_id)
        data = await read_action_body(request, "clearPresence", ("sessionId",))
        session_id = parse_session_id(data, "clearPresence", caller.app.app_id)
        if not service.clear_presence(caller.tenant.id, user.id, session_id):
            raise GraphError(404, "ResourceNotFound",
                             f"The presence session '{session_id}' does not exist for user "
                             f"'{user.id}'.")
        return Response(status_code=200)

    async def set_preferred(request: Request, user_id: str) -> Response:
        caller = caller_of(request)
        user = writable_target(caller, user_id)
        data = await read_action_body(request, "setUserPreferredPresence",
                                      ("availability", "activity", "expirationDuration"))
        state, lifetime = parse_preferred(data)
        service.set_preferred(caller.tenant.id, user.id, state, lifetime, written_by(caller))
        return Response(status_code=200)

    async def clear_preferred(request: Request, user_id: str) -> Response:
        caller = caller_of(request)
        user = writable_target(caller, user_id)
        await read_action_body(request, "clearUserPreferredPresence", (), allow_empty=True)
        service.clear_preferred(caller.tenant.id, user.id)
        return Response(status_code=200)

    async def set_status_message(request: Request, user_id: str) -> Response:
        caller = caller_of(request)
        user = writable_target(caller, user_id)
        data = await read_action_body(request, "setStatusMessage", ("statusMessage",))
        content, expires_at = parse_status_message(data, service.now_us())
        service.set_status_message(caller.tenant.id, user.id, content, expires_at,
                                   written_by(caller))
        return Response(status_code=200)

    app.add_api_route("/v1.0/me/presence", get_my_presence, methods=["GET"])
    app.add_api_route("/v1.0/users/{user_id}/presence", get_user_presence, methods=["GET"])
    app.add_api_route("/v1.0/communications/presences/{user_id}", get_communications_presence,
                      methods=["GET"])
    app.add_api_route("/v1.0/communications/getPresencesByUserId", get_presences_by_user_id,
                      methods=["POST"])
    for action, handler in (("setPresence", set_presence), ("clearPresence", clear_presence),
                            ("setUserPreferredPresence", set_preferred),
                            ("clearUserPreferredPresence", clear_preferred),
                            ("setStatusMessage", set_status_message)):
        app.add_api_route(f"/v1.0/users/{{user_id}}/presence/{action}", handler,
                          methods=["POST"])

