"""/groups, /groups/{id}/members and /users/{id}/memberOf."""

from __future__ import annotations

import httpx

from m365sim.model import Tenant
from m365sim.simulator import Simulator
from tests.sim.conftest import app_token, bearer
from tests.sim.directory.schemas import check_error, validator


def sales(tenant: Tenant) -> str:
    return next(g.id for g in tenant.groups.values() if g.display_name == "Sales")


async def test_groups_list_and_filter_need_a_group_permission(
    client: httpx.AsyncClient, sim: Simulator, tenant: Tenant
) -> None:
    users_only = bearer(app_token(sim, ["User.Read.All"]))
    denied = await client.get("/v1.0/groups", headers=users_only)
    assert denied.status_code == 403
    check_error(denied.json())
    headers = bearer(app_token(sim, ["GroupMember.Read.All"]))
    body = (await client.get("/v1.0/groups?$filter=startsWith(displayName,'sal')"
                             "&$select=id,displayName,securityEnabled", headers=headers)).json()
    assert body["value"] == [{"id": sales(tenant), "displayName": "Sales",
                              "securityEnabled": True}]
    assert body["@odata.context"].endswith("#groups(id,displayName,securityEnabled)")
    one = (await client.get(f"/v1.0/groups/{sales(tenant)}", headers=headers)).json()
    assert one["displayName"] == "Sales" and one["groupTypes"] == []
    missing = await client.get("/v1.0/groups/00000000-0000-0000-0000-000000000000",
                               headers=headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "Request_ResourceNotFound"


async def test_members_are_user_directory_objects_and_member_of_lists_groups(
    client: httpx.AsyncClient, sim: Simulator, tenant: Tenant
) -> None:
    headers = bearer(app_token(sim, ["Directory.Read.All"]))
    members = (await client.get(f"/v1.0/groups/{sales(tenant)}/members"
                                "?$select=id,userPrincipalName", headers=headers)).json()
    assert [m["userPrincipalName"] for m in members["value"]] == ["anna@contoso.com"]
    assert members["value"][0]["@odata.type"] == "#microsoft.graph.user"
    validator("types/user.json").validate(members["value"][0])
    groups = (await client.get("/v1.0/users/anna@contoso.com/memberOf",
                               headers=headers)).json()
    assert [(g["@odata.type"], g["displayName"]) for g in groups["value"]] == [
        ("#microsoft.graph.group", "Sales")]
    none = (await client.get("/v1.0/users/ben@contoso.com/memberOf", headers=headers)).json()
    assert none["value"] == []
