"""Graph routes for groups: list, get, and a group's members.

The model keeps only a group's id, name and members; the other group properties Graph
returns are constants of a cloud security group (securityEnabled true, mailEnabled
false, no groupTypes), as documented in docs/simulator/directory.md.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from m365sim.directory.common import (
    GROUP_READ,
    caller_of,
    context_for,
    graph_json,
    not_found,
)
from m365sim.directory.entity import EQ, IN, NE, NOT, NULL, STARTS, EntitySpec, Prop, ops
from m365sim.directory.query import parse_collection_query, parse_select, run_collection
from m365sim.directory.state import directory_state
from m365sim.directory.user_spec import USER_SPEC
from m365sim.directory.users import response_select
from m365sim.model import Group, User

if TYPE_CHECKING:
    from m365sim.simulator import Simulator


def _nickname(group: Group) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", group.display_name) or group.id[:8]


GROUP_SPEC = EntitySpec(
    type_name="microsoft.graph.group",
    resource="Group",
    entity_set="groups",
    props={prop.name.lower(): prop for prop in (
        Prop("id", "string", lambda g: g.id, ops(EQ, IN), ops(NE, NOT)),
        Prop("displayName", "string", lambda g: g.display_name, ops(EQ, IN, STARTS),
             ops(NE, NOT, NULL)),
        Prop("mailNickname", "string", _nickname, ops(EQ, IN, STARTS), ops(NE, NOT)),
        Prop("securityEnabled", "bool", lambda g: True, ops(EQ, IN), ops(NE, NOT)),
        Prop("mailEnabled", "bool", lambda g: False, ops(EQ, IN), ops(NE, NOT)),
    )},
    render={
        "id": lambda g: g.id,
        "displayName": lambda g: g.display_name,
        "description": lambda g: None,
        "mail": lambda g: None,
        "mailEnabled": lambda g: False,
        "mailNickname": _nickname,
        "securityEnabled": lambda g: True,
        "groupTypes": lambda g: [],
        "visibility": lambda g: None,
        "createdDateTime": lambda g: None,
        "deletedDateTime": lambda g: None,
        "proxyAddresses": lambda g: [],
        "onPremisesSyncEnabled": lambda g: None,
        "securityIdentifier": lambda g: None,
    },
    default_select=("id", "deletedDateTime", "createdDateTime", "description", "displayName",
                    "groupTypes", "mail", "mailEnabled", "mailNickname",
                    "onPremisesSyncEnabled", "proxyAddresses", "securityEnabled",
                    "securityIdentifier", "visibility"),
    searchable=frozenset({"displayName", "mailNickname"}),
    orderable=frozenset({"displayName"}),
)


def group_json(group: Group, select: tuple[str, ...]) -> dict[str, Any]:
    """A group as `/groups` returns it."""
    return GROUP_SPEC.to_json(group, select)


def group_object_json(group: Group, select: tuple[str, ...]) -> dict[str, Any]:
    """A group inside a directoryObject collection (memberOf), with its `@odata.type`."""
    return {"@odata.type": "#microsoft.graph.group", **GROUP_SPEC.to_json(group, select)}


def _group(sim: Simulator, request: Request, group_id: str) -> tuple[Any, Group]:
    caller = caller_of(sim, request)
    caller.require(delegated=GROUP_READ, application=GROUP_READ)
    group = caller.tenant.groups.get(group_id)
    if group is None:
        raise not_found(group_id)
    return caller, group


def register_group_routes(app: FastAPI, sim: Simulator) -> None:
    """Add `/groups`, `/groups/{id}` and `/groups/{id}/members`."""

    @app.get("/v1.0/groups")
    async def groups(request: Request) -> Response:
        caller = caller_of(sim, request)
        caller.require(delegated=GROUP_READ, application=GROUP_READ)
        query = parse_collection_query(request, GROUP_SPEC)
        state = directory_state(sim)
        items = sorted(caller.tenant.groups.values(), key=lambda g: g.id)
        return graph_json(run_collection(
            items, query, signer=state.signer, base_url=sim.base_url, path="/v1.0/groups",
            context=context_for(sim, "groups", query.select, bool(query.select)),
            render=group_json, select=query.select or GROUP_SPEC.default_select))

    @app.get("/v1.0/groups/{group_id}")
    async def group(group_id: str, request: Request) -> Response:
        _, found = _group(sim, request, group_id)
        select = parse_select(GROUP_SPEC, request.query_params.get("$select"))
        body: dict[str, Any] = {
            "@odata.context": context_for(sim, "groups", select, bool(select), entity=True)}
        body.update(group_json(found, select or GROUP_SPEC.default_select))
        return graph_json(body)

    @app.get("/v1.0/groups/{group_id}/members")
    async def members(group_id: str, request: Request) -> Response:
        caller, found = _group(sim, request, group_id)
        query = parse_collection_query(request, USER_SPEC)
        state = directory_state(sim)
        tenant = caller.tenant
        users = sorted((tenant.users[m] for m in found.members
                        if m in tenant.users and not tenant.users[m].deleted),
                       key=lambda u: u.id)
        select = response_select(caller, query.select)

        def member_json(user: User, chosen: tuple[str, ...]) -> dict[str, Any]:
            return {"@odata.type": "#microsoft.graph.user", **USER_SPEC.to_json(user, chosen)}

        return graph_json(run_collection(
            users, query, signer=state.signer, base_url=sim.base_url,
            path=f"/v1.0/groups/{found.id}/members",
            context=context_for(sim, "directoryObjects", query.select, bool(query.select)),
            render=member_json, select=select))
