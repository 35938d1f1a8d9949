"""Control routes: act as the person in Teams and read the full presence picture."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from m365sim.events import ResourceChange
from m365sim.model import Tenant, User
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID
from tests.sim.presence.conftest import shown
from tests.sim.presence.test_read_endpoints import assert_graph_error

TEAMS = "/_sim/tenants/contoso.com/users/anna@contoso.com/teams"
PICTURE = "/_sim/tenants/contoso.com/users/anna@contoso.com/presence"


async def act(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(TEAMS, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_joining_a_call_in_teams_shows_and_notifies(
    client: httpx.AsyncClient, sim: Simulator, tenant: Tenant, anna: User,
    changes: list[ResourceChange],
) -> None:
    picture = await act(client, {"availability": "Busy", "activity": "InACall"})
    assert picture["clients"] == [{"client": "desktop", "availability": "Busy",
                                   "activity": "InACall"}]
    assert (picture["aggregate"]["availability"], picture["aggregate"]["activity"]) == (
        "Busy", "InACall")
    assert shown(sim, tenant, anna) == ("Busy", "InACall")
    assert len(changes) == 1 and changes[0].resource_id == anna.id


async def test_signing_out_of_every_client_reads_offline(
    client: httpx.AsyncClient, sim: Simulator, tenant: Tenant, anna: User,
) -> None:
    await act(client, {"client": "mobile", "availability": "Away", "activity": "Away"})
    picture = await act(client, {"signed_in": False, "client": "desktop"})
    assert [c["client"] for c in picture["clients"]] == ["mobile"]
    assert shown(sim, tenant, anna) == ("Away", "Away")
    picture = await act(client, {"signed_in": False})
    assert picture["clients"] == []
    assert shown(sim, tenant, anna) == ("Offline", "Offline")
    picture = await act(client, {"signed_in": True})
    assert shown(sim, tenant, anna) == ("Available", "Available")


async def test_preferred_presence_from_teams_with_expiry_and_clearing(
    client: httpx.AsyncClient, sim: Simulator, tenant: Tenant, anna: User,
) -> None:
    picture = await act(client, {"preferred": {"availability": "DoNotDisturb",
                                               "activity": "DoNotDisturb",
                                               "expiration": "PT1H"}})
    assert picture["preferred"] == {"availability": "DoNotDisturb", "activity": "DoNotDisturb",
                                    "set": "2026-01-05T08:00:00Z",
                                    "expires": "2026-01-05T09:00:00Z", "set_by": "teams"}
    assert shown(sim, tenant, anna) == ("DoNotDisturb", "DoNotDisturb")
    picture = await act(client, {"preferred": None})
    assert picture["preferred"] is None
    assert shown(sim, tenant, anna) == ("Available", "Available")


async def test_status_message_from_teams(client: httpx.AsyncClient) -> None:
    picture = await act(client, {"status_message": "Working from Lisbon"})
    assert picture["status_message"]["content"] == "Working from Lisbon"
    assert picture["aggregate"]["statusMessage"]["publishedDateTime"] == (
        "2026-01-05T08:00:00.0000000Z")
    picture = await act(client, {"status_message": None})
    assert picture["status_message"] is None and picture["aggregate"]["statusMessage"] is None


async def test_picture_shows_what_apps_wrote(
    client: httpx.AsyncClient, app_headers: dict[str, str], anna: User,
) -> None:
    await client.post(f"/v1.0/users/{anna.id}/presence/setPresence", headers=app_headers,
                      json={"sessionId": APP_ID, "availability": "Available",
                            "activity": "Available", "expirationDuration": "PT30M"})
    response = await client.get(PICTURE)
    assert response.status_code == 200
    picture = response.json()
    assert picture["user_id"] == anna.id and picture["teams"] is True
    assert picture["app_sessions"][0]["session_id"] == APP_ID
    assert picture["app_sessions"][0]["expires"] == "2026-01-05T08:30:00Z"
    by_id = await client.get(f"/_sim/tenants/{picture['tenant_id']}/users/{anna.id}/presence")
    assert by_id.json()["app_sessions"] == picture["app_sessions"]


@pytest.mark.parametrize("body", [
    {"availability": "Offline", "activity": "OffWork"},
    {"availability": "Busy"},
    {"preferred": {"availability": "Busy", "activity": "InACall"}},
    {"preferred": {"availability": "Busy", "activity": "Busy", "expiration": "soon"}},
    {"preferred": "Busy"},
    {"signed_in": "no"},
    {"status_message": 5},
    {"client": ""},
    {"mood": "happy"},
])
async def test_bad_teams_actions_are_refused_and_change_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], changes: list[ResourceChange],
) -> None:
    assert_graph_error(await client.post(TEAMS, json=body), 400, "BadRequest")
    assert_graph_error(await client.post(TEAMS, content=b"{oops"), 400, "BadRequest")
    assert changes == []


async def test_unknown_tenant_or_user_is_404_and_unlicensed_user_cannot_act(
    client: httpx.AsyncClient, olaf: User,
) -> None:
    assert_graph_error(await client.get("/_sim/tenants/fabrikam.com/users/x@y.z/presence"),
                       404, "ResourceNotFound")
    assert_graph_error(await client.get("/_sim/tenants/contoso.com/users/nobody@contoso.com"
                                        "/presence"), 404, "ResourceNotFound")
    picture = (await client.get(f"/_sim/tenants/contoso.com/users/{olaf.id}/presence")).json()
    assert picture["teams"] is False
    assert picture["aggregate"]["availability"] == "PresenceUnknown"
    assert_graph_error(await client.post(f"/_sim/tenants/contoso.com/users/{olaf.id}/teams",
                                         json={"signed_in": True}), 400, "BadRequest")
