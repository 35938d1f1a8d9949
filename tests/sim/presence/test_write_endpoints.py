"""The presence actions: setPresence, clearPresence, preferred presence, status message."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from m365sim.clock import VirtualClock
from m365sim.events import ResourceChange
from m365sim.model import Tenant, User
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID, app_token, bearer, user_token
from tests.sim.presence.conftest import shown
from tests.sim.presence.schemas import fixture, validator
from tests.sim.presence.test_read_endpoints import assert_graph_error


def action(user: User, name: str) -> str:
    return f"/v1.0/users/{user.id}/presence/{name}"


def set_presence_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {**fixture("presence-setpresence.request.json"), "sessionId": APP_ID}
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


async def post(client: httpx.AsyncClient, url: str, body: dict[str, Any],
               headers: dict[str, str], *, schema: str | None = None) -> httpx.Response:
    if schema is not None:
        validator(f"actions/{schema}.request.json").validate(body)
    return await client.post(url, json=body, headers=headers)


# -- setPresence ----------------------------------------------------------------------------

async def test_set_presence_creates_the_apps_session_with_its_expiry(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, tenant: Tenant,
    ben: User,
) -> None:
    sim.presence.sign_out(tenant.id, ben.id)
    body = set_presence_body(availability="Busy", activity="InACall", expirationDuration="PT1H")
    response = await post(client, action(ben, "setPresence"), body, app_headers,
                          schema="setPresence")
    assert response.status_code == 200 and response.content == b""
    assert shown(sim, tenant, ben) == ("Busy", "InACall")
    picture = (await client.get(f"/_sim/tenants/{tenant.id}/users/{ben.id}/presence")).json()
    assert picture["app_sessions"] == [{
        "session_id": APP_ID, "availability": "Busy", "activity": "InACall",
        "shown": {"availability": "Busy", "activity": "InACall"},
        "created": "2026-01-05T08:00:00Z", "last_set": "2026-01-05T08:00:00Z",
        "expires": "2026-01-05T09:00:00Z"}]


@pytest.mark.parametrize(("availability", "activity"), [
    ("Available", "Available"), ("Busy", "InACall"), ("Busy", "InAConferenceCall"),
    ("Away", "Away"), ("DoNotDisturb", "Presenting")])
async def test_set_presence_accepts_the_five_documented_combinations(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, tenant: Tenant,
    ben: User, availability: str, activity: str,
) -> None:
    sim.presence.sign_out(tenant.id, ben.id)
    body = set_presence_body(availability=availability, activity=activity)
    response = await post(client, action(ben, "setPresence"), body, app_headers,
                          schema="setPresence")
    assert response.status_code == 200
    assert shown(sim, tenant, ben) == (availability, activity)


@pytest.mark.parametrize("changes_to_body", [
    {"availability": "DoNotDisturb", "activity": "DoNotDisturb"},
    {"availability": "Available", "activity": "OutOfOffice"},
    {"availability": "Busy", "activity": "InAMeeting"},
    {"availability": "Busy", "activity": "Busy"},
    {"availability": "Offline", "activity": "OffWork"},
    {"availability": "Sleeping", "activity": "Available"},
    {"activity": None},
    {"availability": 3},
    {"sessionId": None},
    {"sessionId": "22553876-f5ab-4529-bffb-cfe50aa89f87"},
    {"expirationDuration": "PT4M59S"},
    {"expirationDuration": "PT4H1S"},
    {"expirationDuration": "P1D"},
    {"expirationDuration": "one hour"},
    {"expirationDuration": 3600},
    {"sessionID": APP_ID},
])
async def test_set_presence_refuses_bad_bodies_and_changes_nothing(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, tenant: Tenant,
    anna: User, changes: list[ResourceChange], changes_to_body: dict[str, Any],
) -> None:
    body = set_presence_body(**changes_to_body)
    response = await client.post(action(anna, "setPresence"), json=body, headers=app_headers)
    assert_graph_error(response, 400, "BadRequest")
    assert changes == [] and sim.presence.state_of(tenant.id, anna.id).apps == {}


async def test_set_presence_accepts_the_range_limits_pt5m_and_pt4h(
    client: httpx.AsyncClient, app_headers: dict[str, str], anna: User,
) -> None:
    for duration in ("PT5M", "PT4H", "PT240M", "PT300S"):
        response = await client.post(action(anna, "setPresence"), headers=app_headers,
                                     json=set_presence_body(expirationDuration=duration))
        assert response.status_code == 200, duration


async def test_set_presence_session_id_must_be_the_callers_app_id(
    client: httpx.AsyncClient, app_headers: dict[str, str], anna: User,
) -> None:
    response = await client.post(action(anna, "setPresence"), headers=app_headers,
                                 json=set_presence_body(sessionId=APP_ID.upper()))
    assert response.status_code == 200
    response = await client.post(action(anna, "setPresence"), headers=app_headers,
                                 json=set_presence_body(sessionId="not-my-app"))
    error = assert_graph_error(response, 400, "BadRequest")
    assert APP_ID in error["message"]


async def test_default_session_lifetime_is_five_minutes(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, tenant: Tenant,
    ben: User, clock: VirtualClock,
) -> None:
    sim.presence.sign_out(tenant.id, ben.id)
    body = set_presence_body(availability="Busy", activity="InACall", expirationDuration=None)
    assert (await client.post(action(ben, "setPresence"), json=body,
                              headers=app_headers)).status_code == 200
    await clock.advance(299)
    assert shown(sim, tenant, ben) == ("Busy", "InACall")
    await clock.advance(1)
    assert shown(sim, tenant, ben) == ("Offline", "Offline")


async def test_writes_need_presence_readwrite(
    client: httpx.AsyncClient, sim: Simulator, anna: User, ben: User,
) -> None:
    reader = bearer(app_token(sim, ["Presence.Read.All"]))
    error = assert_graph_error(await client.post(action(anna, "setPresence"), headers=reader,
                                                 json=set_presence_body()), 403, "Forbidden")
    assert "Presence.ReadWrite.All" in error["message"]
    own = bearer(user_token(sim, "anna@contoso.com", ["Presence.ReadWrite"]))
    assert (await client.post(action(anna, "setPresence"), headers=own,
                              json=set_presence_body())).status_code == 200
    assert_graph_error(await client.post(action(ben, "setPresence"), headers=own,
                                         json=set_presence_body()), 403, "Forbidden")
    read_only = bearer(user_token(sim, "anna@contoso.com", ["Presence.Read.All"]))
    assert_graph_error(await client.post(action(anna, "setPresence"), headers=read_only,
                                         json=set_presence_body()), 403, "Forbidden")


async def test_writes_to_unknown_unlicensed_or_upn_addressed_users_fail(
    client: httpx.AsyncClient, app_headers: dict[str, str], olaf: User,
) -> None:
    body = set_presence_body()
    unknown = "/v1.0/users/5b7d1e0c-0000-4000-8000-00000000beef/presence/setPresence"
    assert_graph_error(await client.post(unknown, json=body, headers=app_headers),
                       404, "ResourceNotFound")
    assert_graph_error(await client.post(action(olaf, "setPresence"), json=body,
                                         headers=app_headers), 404, "ResourceNotFound")
    by_upn = "/v1.0/users/anna@contoso.com/presence/setPresence"
    assert_graph_error(await client.post(by_upn, json=body, headers=app_headers),
                       400, "BadRequest")


async def test_action_bodies_must_be_json(
    client: httpx.AsyncClient, app_headers: dict[str, str], anna: User,
) -> None:
    url = action(anna, "setPresence")
    for content, content_type in ((b"{not json", "application/json"),
                                  (b"[1, 2]", "application/json"),
                                  (b"", "application/json"),
                                  (b'{"availability": "Away"}', "text/plain"),
                                  (b"availability=Away", "application/x-www-form-urlencoded")):
        response = await client.post(url, content=content,
                                     headers={**app_headers, "Content-Type": content_type})
        assert_graph_error(response, 400, "BadRequest")


# -- clearPresence --------------------------------------------------------------------------

async def test_clear_presence_ends_the_session_and_404s_without_one(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, tenant: Tenant,
    ben: User,
) -> None:
    sim.presence.sign_out(tenant.id, ben.id)
    await client.post(action(ben, "setPresence"), json=set_presence_body(), headers=app_headers)
    body = {**fixture("presence-clearpresence.request.json"), "sessionId": APP_ID}
    response = await post(client, action(ben, "clearPresence"), body, app_headers,
                          schema="clearPresence")
    assert response.status_code == 200
    assert shown(sim, tenant, ben) == ("Offline", "Offline")
    response = await client.post(action(ben, "clearPresence"), json=body, headers=app_headers)
    assert_graph_error(response, 404, "ResourceNotFound")
    other = {"sessionId": "22553876-f5ab-4529-bffb-cfe50aa89f87"}
    assert_graph_error(await client.post(action(ben, "clearPresence"), json=other,
                                         headers=app_headers), 400, "BadRequest")


async def test_clear_presence_leaves_the_other_sessions_aggregated(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, tenant: Tenant,
    anna: User,
) -> None:
    await client.post(action(anna, "setPresence"), headers=app_headers,
                      json=set_presence_body(availability="Busy", activity="InACall"))
    assert shown(sim, tenant, anna) == ("Busy", "InACall")
    await client.post(action(anna, "clearPresence"), json={"sessionId": APP_ID},
                      headers=app_headers)
    assert shown(sim, tenant, anna) == ("Available", "Available")


# -- preferred presence ---------------------------------------------------------------------

@pytest.mark.parametrize(("availability", "activity", "default_days"), [
    ("Available", "Available", 7), ("Busy", "Busy", 1), ("DoNotDisturb", "DoNotDisturb", 1),
    ("BeRightBack", "BeRightBack", 7), ("Away", "Away", 7), ("Offline", "OffWork", 7)])
async def test_set_user_preferred_presence_accepts_six_combinations_with_default_expiry(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, tenant: Tenant,
    anna: User, availability: str, activity: str, default_days: int,
) -> None:
    body = {"availability": availability, "activity": activity}
    response = await post(client, action(anna, "setUserPreferredPresence"), body, app_headers,
                          schema="setUserPreferredPresence")
    assert response.status_code == 200
    assert shown(sim, tenant, anna) == (availability, activity)
    preferred = (await client.get(
        "/_sim/tenants/contoso.com/users/anna@contoso.com/presence")).json()["preferred"]
    assert preferred["expires"] == f"2026-01-{5 + default_days:02d}T08:00:00Z"
    assert preferred["set_by"] == f"app {APP_ID}"


async def test_set_user_preferred_presence_uses_the_given_expiry_and_refuses_bad_input(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, tenant: Tenant,
    anna: User, clock: VirtualClock,
) -> None:
    body = fixture("presence-setuserpreferredpresence.request.json")
    response = await post(client, action(anna, "setUserPreferredPresence"), body, app_headers,
                          schema="setUserPreferredPresence")
    assert response.status_code == 200
    for bad in ({"availability": "Busy", "activity": "InACall"},
                {"availability": "Busy"},
                {"availability": "Busy", "activity": "Busy", "expirationDuration": "PT0S"},
                {"availability": "Busy", "activity": "Busy", "expirationDuration": "8 hours"},
                {"availability": "Busy", "activity": "Busy", "sessionId": APP_ID}):
        assert_graph_error(await client.post(action(anna, "setUserPreferredPresence"),
                                             json=bad, headers=app_headers), 400, "BadRequest")
    await clock.advance(8 * 3600 - 1)
    assert shown(sim, tenant, anna) == ("DoNotDisturb", "DoNotDisturb")
    await clock.advance(1)
    assert shown(sim, tenant, anna) == ("Available", "Available")


async def test_clear_user_preferred_presence_shows_the_sessions_again(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, tenant: Tenant,
    anna: User,
) -> None:
    sim.presence.set_client_state(tenant.id, anna.id, ("Busy", "InACall"))
    await client.post(action(anna, "setUserPreferredPresence"), headers=app_headers,
                      json={"availability": "Away", "activity": "Away"})
    assert shown(sim, tenant, anna) == ("Away", "Away")
    response = await post(client, action(anna, "clearUserPreferredPresence"), {}, app_headers,
                          schema="clearUserPreferredPresence")
    assert response.status_code == 200
    assert shown(sim, tenant, anna) == ("Busy", "InACall")
    empty = await client.post(action(anna, "clearUserPreferredPresence"), headers=app_headers)
    assert empty.status_code == 200
    assert_graph_error(await client.post(action(anna, "clearUserPreferredPresence"),
                                         json={"sessionId": APP_ID}, headers=app_headers),
                       400, "BadRequest")


# -- status message -------------------------------------------------------------------------

async def test_set_status_message_with_a_windows_time_zone_expiry(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, tenant: Tenant,
    anna: User, clock: VirtualClock, changes: list[ResourceChange],
) -> None:
    body = fixture("presence-setstatusmessage.request.json")
    body["statusMessage"]["expiryDateTime"]["dateTime"] = "2026-01-05T01:00:00.0000000"
    response = await post(client, action(anna, "setStatusMessage"), body, app_headers,
                          schema="setStatusMessage")
    assert response.status_code == 200
    own = sim.presence.read(tenant, anna.id, own=True)
    assert own is not None
    assert own["statusMessage"]["message"] == body["statusMessage"]["message"]
    # 01:00 Pacific Standard Time is 09:00 UTC, an hour after the virtual clock's 08:00.
    assert own["statusMessage"]["expiryDateTime"] == {
        "dateTime": "2026-01-05T09:00:00.0000000", "timeZone": "UTC"}
    await clock.advance(3600)
    after = sim.presence.read(tenant, anna.id)
    assert after is not None and after["statusMessage"] is None
    assert [c.resource_data["statusMessage"] is None for c in changes] == [False, True]


async def test_set_status_message_without_expiry_and_clearing_it(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, tenant: Tenant,
    anna: User,
) -> None:
    body = {"statusMessage": {"message": {"content": "Hey I am available now",
                                          "contentType": "text"}}}
    assert (await post(client, action(anna, "setStatusMessage"), body, app_headers,
                       schema="setStatusMessage")).status_code == 200
    own = sim.presence.read(tenant, anna.id, own=True)
    assert own is not None and "expiryDateTime" not in own["statusMessage"]
    clear = {"statusMessage": {"message": {"content": "", "contentType": "text"}}}
    assert (await client.post(action(anna, "setStatusMessage"), json=clear,
                              headers=app_headers)).status_code == 200
    assert (sim.presence.read(tenant, anna.id) or {})["statusMessage"] is None


@pytest.mark.parametrize("status", [
    {"message": {"content": "<b>Hi</b>", "contentType": "html"}},
    {"message": {"content": "Hi", "contentType": "markdown"}},
    {"message": {"content": 5, "contentType": "text"}},
    {"message": {"content": "x" * 281, "contentType": "text"}},
    {"message": {"content": "Hi", "contentType": "text", "color": "red"}},
    {"message": "Hi"},
    {"message": {"content": "Hi"}, "expiryDateTime": {"dateTime": "2020-01-01T00:00:00",
                                                      "timeZone": "UTC"}},
    {"message": {"content": "Hi"}, "expiryDateTime": {"dateTime": "2027-01-01T00:00:00",
                                                      "timeZone": "Atlantis Time"}},
    {"message": {"content": "Hi"}, "expiryDateTime": {"dateTime": "tomorrow",
                                                      "timeZone": "UTC"}},
])
async def test_set_status_message_refuses_bad_messages(
    client: httpx.AsyncClient, app_headers: dict[str, str], anna: User,
    status: dict[str, Any], changes: list[ResourceChange],
) -> None:
    response = await client.post(action(anna, "setStatusMessage"),
                                 json={"statusMessage": status}, headers=app_headers)
    assert_graph_error(response, 400, "BadRequest")
    assert changes == []
    missing = await client.post(action(anna, "setStatusMessage"), json={"message": "Hi"},
                                headers=app_headers)
    assert_graph_error(missing, 400, "BadRequest")


async def test_delegated_user_sets_own_status_message_and_preferred_presence(
    client: httpx.AsyncClient, sim: Simulator, tenant: Tenant, anna: User,
) -> None:
    headers = bearer(user_token(sim, "anna@contoso.com", ["Presence.ReadWrite"]))
    body = {"statusMessage": {"message": {"content": "WFH", "contentType": "text"}}}
    assert (await client.post(action(anna, "setStatusMessage"), json=body,
                              headers=headers)).status_code == 200
    assert (await client.post(action(anna, "setUserPreferredPresence"), headers=headers,
                              json={"availability": "Busy", "activity": "Busy"})).status_code \
        == 200
    picture = (await client.get(f"/_sim/tenants/{tenant.id}/users/{anna.id}/presence")).json()
    assert picture["preferred"]["set_by"] == f"anna@contoso.com via app {APP_ID}"
    assert picture["status_message"]["content"] == "WFH"
