"""Graph routes for users: list, get, `/me`, `$count`, and a user's group memberships."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from m365sim.auth import Caller
from m365sim.directory.common import (
    USER_READ_APPLICATION,
    USER_READ_DELEGATED,
    basic_only,
    caller_of,
    context_for,
    graph_json,
    not_found,
)
from m365sim.directory.query import (
    CollectionQuery,
    eventual,
    parse_collection_query,
    parse_select,
    query_options,
    run_collection,
)
from m365sim.directory.state import directory_state
from m365sim.directory.user_spec import BASIC_PROFILE, LIST_UNSUPPORTED, USER_SPEC
from m365sim.errors import GraphError
from m365sim.model import User

if TYPE_CHECKING:
    from m365sim.simulator import Simulator


def user_json(user: User, select: tuple[str, ...]) -> dict[str, Any]:
    """A user as Graph returns it with these properties."""
    return USER_SPEC.to_json(user, select)


def response_select(caller: Caller, select: tuple[str, ...]) -> tuple[str, ...]:
    """The properties to return: `$select` or the default set, cut to what the caller sees.

    With User.ReadBasic.All only the basic profile comes back; other selected properties
    are left out rather than refused (simulator choice, docs/simulator/directory.md).
    """
    chosen = select or USER_SPEC.default_select
    if basic_only(caller):
        chosen = tuple(name for name in chosen if name in BASIC_PROFILE)
    return chosen


def require_user_read(caller: Caller) -> None:
    """Graph's 403 unless the token may list users."""
    caller.require(delegated=USER_READ_DELEGATED, application=USER_READ_APPLICATION)


def check_basic_reads(caller: Caller, query: CollectionQuery) -> None:
    """A basic-profile caller may not filter, search or sort on other properties."""
    if not basic_only(caller):
        return
    for name in query.read_properties:
        canonical = USER_SPEC.canonical(name) or name
        if canonical not in BASIC_PROFILE:
            raise GraphError(403, "Authorization_RequestDenied",
                             "Insufficient privileges to complete the operation.")


def list_users(sim: Simulator, request: Request) -> dict[str, Any]:
    """The body of `GET /users` for this request."""
    caller = caller_of(sim, request)
    require_user_read(caller)
    query = parse_collection_query(request, USER_SPEC)
    check_basic_reads(caller, query)
    select = response_select(caller, query.select)
    unsupported = [name for name in select if name in LIST_UNSUPPORTED]
    if unsupported:
        raise GraphError(501, "NotImplemented", "This operation target is not yet supported.")
    state = directory_state(sim)
    return run_collection(
        state.ordered_users(caller.tenant), query, signer=state.signer, base_url=sim.base_url,
        path="/v1.0/users", context=context_for(sim, "users", query.select, bool(query.select)),
        render=user_json, select=select,
    )


def get_user(sim: Simulator, request: Request, caller: Caller, user: User) -> dict[str, Any]:
    """The body of `GET /users/{id}` or `/me` for an already authorised caller."""
    options = query_options(request)
    if "$expand" in options:
        raise GraphError(400, "Request_UnsupportedQuery",
                         "$expand is not supported for this request by the simulator.")
    select = parse_select(USER_SPEC, options.get("$select"))
    own = caller.user is not None and caller.user.id == user.id
    chosen = select or USER_SPEC.default_select
    if not own or not (caller.permissions & {"User.Read", "User.ReadWrite"}):
        chosen = response_select(caller, select)
    body: dict[str, Any] = {"@odata.context": context_for(sim, "users", select, bool(select),
                                                          entity=True)}
    body.update(user_json(user, chosen))
    return body


def memberships(sim: Simulator, request: Request, caller: Caller, user: User
                ) -> dict[str, Any]:
    """The body of `GET /users/{id}/memberOf`: the user's groups as directory objects."""
    from m365sim.directory.groups import GROUP_SPEC, group_object_json

    query = parse_collection_query(request, GROUP_SPEC)
    if query.predicates or query.orderby:
        raise GraphError(400, "Request_UnsupportedQuery",
                         "$filter, $search and $orderby on memberOf are not supported by the "
                         "simulator.")
    groups = sorted((caller.tenant.groups[g] for g in user.member_of
                     if g in caller.tenant.groups), key=lambda g: g.id)
    state = directory_state(sim)
    return run_collection(
        groups, query, signer=state.signer, base_url=sim.base_url,
        path=f"/v1.0/users/{user.id}/memberOf",
        context=context_for(sim, "directoryObjects", query.select, bool(query.select)),
        render=group_object_json, select=query.select or GROUP_SPEC.default_select,
    )


def _target(caller: Caller, user_id: str) -> User:
    user = caller.tenant.find_user(user_id)
    if user is None:
        raise not_found(user_id)
    return user


def _me(caller: Caller) -> User:
    if caller.user is None:
        raise GraphError(400, "BadRequest",
                         "/me request is only valid with delegated authentication flow.")
    return caller.user


def register_user_routes(app: FastAPI, sim: Simulator) -> None:
    """Add the user routes (after `/users/delta`, which must be matched first)."""

    @app.get("/v1.0/users")
    async def users(request: Request) -> Response:
        return graph_json(list_users(sim, request))

    @app.get("/v1.0/users/$count")
    async def users_count(request: Request) -> Response:
        caller = caller_of(sim, request)
        require_user_read(caller)
        if not eventual(request):
            # Documented answer without advanced query parameters (aad-advanced-queries.md).
            raise GraphError(400, "Request_BadRequest", "$count is not currently supported.")
        count = len(directory_state(sim).ordered_users(caller.tenant))
        return PlainTextResponse(str(count))

    @app.get("/v1.0/me")
    async def me(request: Request) -> Response:
        caller = caller_of(sim, request)
        user = _me(caller)
        caller.require(delegated=("User.Read", *USER_READ_DELEGATED))
        return graph_json(get_user(sim, request, caller, user))

    @app.get("/v1.0/users/{user_id}")
    async def user(user_id: str, request: Request) -> Response:
        caller = caller_of(sim, request)
        target = _target(caller, user_id)
        own = caller.user is not None and caller.user.id == target.id
        if not (own and caller.permissions & {"User.Read", "User.ReadWrite"}):
            require_user_read(caller)
        return graph_json(get_user(sim, request, caller, target))

    @app.get("/v1.0/me/memberOf")
    async def my_groups(request: Request) -> Response:
        caller = caller_of(sim, request)
        user = _me(caller)
        caller.require(delegated=("User.Read", *USER_READ_DELEGATED))
        return graph_json(memberships(sim, request, caller, user))

    @app.get("/v1.0/users/{user_id}/memberOf")
    async def user_groups(user_id: str, request: Request) -> Response:
        caller = caller_of(sim, request)
        caller.require(delegated=(*USER_READ_DELEGATED, "GroupMember.Read.All"),
                       application=(*USER_READ_APPLICATION, "GroupMember.Read.All"))
        return graph_json(memberships(sim, request, caller, _target(caller, user_id)))
