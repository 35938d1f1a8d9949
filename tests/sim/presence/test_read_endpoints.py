"""GET presence, /me/presence, communications/presences and getPresencesByUserId (graph.md 3.2)."""

from __future__ import annotations

import uuid

import httpx

from m365sim.model import Tenant, User
from m365sim.presence.timefmt import US_PER_MINUTE
from m365sim.simulator import Simulator
from tests.sim.conftest import app_token, bearer, user_token
from tests.sim.presence.schemas import check_presence, fixture, validator

UNKNOWN = "5b7d1e0c-0000-4000-8000-00000000beef"


def assert_graph_error(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    validator("types/odata-error.json").validate(response.json())
    error: dict[str, str] = response.json()["error"]
    assert error["code"] == code
    return error


async def test_get_user_presence_has_the_documented_shape(
    client: httpx.AsyncClient, app_headers: dict[str, str], anna: User,
) -> None:
    response = await client.get(f"/v1.0/users/{anna.id}/presence", headers=app_headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    check_presence(body)
    assert set(fixture("presence-get-full.response.json")) <= set(body)
    assert body["id"] == anna.id
    assert (body["availability"], body["activity"]) == ("Available", "Available")
    assert body["outOfOfficeSettings"] == {"message": None, "isOutOfOffice": False}
    assert body["@odata.context"].endswith(f"$metadata#users('{anna.id}')/presence/$entity")


async def test_communications_presences_reads_the_same_presence(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, tenant: Tenant,
    anna: User,
) -> None:
    sim.presence.set_client_state(tenant.id, anna.id, ("DoNotDisturb", "Presenting"))
    response = await client.get(f"/v1.0/communications/presences/{anna.id}",
                                headers=app_headers)
    assert response.status_code == 200
    body = response.json()
    check_presence(body)
    assert (body["availability"], body["activity"]) == ("DoNotDisturb", "Presenting")
    assert set(fixture("presence-get.response.json")) <= set(body)


async def test_me_presence_is_delegated_only(
    client: httpx.AsyncClient, sim: Simulator, app_headers: dict[str, str], anna: User,
) -> None:
    token = user_token(sim, "anna@contoso.com", ["Presence.Read"])
    response = await client.get("/v1.0/me/presence", headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["id"] == anna.id
    error = assert_graph_error(await client.get("/v1.0/me/presence", headers=app_headers),
                               400, "BadRequest")
    assert "delegated" in error["message"]


async def test_status_message_times_only_in_the_users_own_view(
    client: httpx.AsyncClient, sim: Simulator, tenant: Tenant, anna: User,
) -> None:
    expires = sim.presence.now_us() + 60 * US_PER_MINUTE
    sim.presence.set_status_message(tenant.id, anna.id, "In Hamburg today", expires, "t")
    own = await client.get("/v1.0/me/presence",
                           headers=bearer(user_token(sim, "anna@contoso.com")))
    status = own.json()["statusMessage"]
    assert status["message"] == {"content": "In Hamburg today", "contentType": "text"}
    assert status["expiryDateTime"] == {"dateTime": "2026-01-05T09:00:00.0000000",
                                        "timeZone": "UTC"}
    assert status["publishedDateTime"] == "2026-01-05T08:00:00.0000000Z"
    check_presence(own.json())
    other = await client.get(f"/v1.0/users/{anna.id}/presence",
                             headers=bearer(user_token(sim, "ben@contoso.com")))
    assert other.json()["statusMessage"] == {
        "message": {"content": "In Hamburg today", "contentType": "text"}}


async def test_presence_is_addressed_by_object_id_not_upn(
    client: httpx.AsyncClient, app_headers: dict[str, str],
) -> None:
    error = assert_graph_error(
        await client.get("/v1.0/users/anna@contoso.com/presence", headers=app_headers),
        400, "BadRequest")
    assert "GUID" in error["message"]


async def test_unknown_user_is_404_and_unlicensed_user_is_presence_unknown(
    client: httpx.AsyncClient, app_headers: dict[str, str], olaf: User,
) -> None:
    assert_graph_error(await client.get(f"/v1.0/users/{UNKNOWN}/presence", headers=app_headers),
                       404, "ResourceNotFound")
    response = await client.get(f"/v1.0/users/{olaf.id}/presence", headers=app_headers)
    assert response.status_code == 200
    assert (response.json()["availability"], response.json()["activity"]) == (
        "PresenceUnknown", "PresenceUnknown")


async def test_reading_needs_presence_read_all(
    client: httpx.AsyncClient, sim: Simulator, anna: User, ben: User,
) -> None:
    no_presence = bearer(app_token(sim, ["User.Read.All"]))
    error = assert_graph_error(
        await client.get(f"/v1.0/users/{anna.id}/presence", headers=no_presence),
        403, "Forbidden")
    assert "Presence.Read.All" in error["message"]
    own_only = bearer(user_token(sim, "ben@contoso.com", ["Presence.Read"]))
    assert (await client.get(f"/v1.0/users/{ben.id}/presence", headers=own_only)).status_code \
        == 200
    assert_graph_error(await client.get(f"/v1.0/users/{anna.id}/presence", headers=own_only),
                       403, "Forbidden")
    reader = bearer(app_token(sim, ["Presence.Read.All"]))
    assert (await client.get(f"/v1.0/users/{anna.id}/presence", headers=reader)).status_code \
        == 200


async def test_missing_or_bad_token_is_401(client: httpx.AsyncClient, anna: User) -> None:
    assert_graph_error(await client.get(f"/v1.0/users/{anna.id}/presence"),
                       401, "InvalidAuthenticationToken")
    assert_graph_error(await client.get(f"/v1.0/users/{anna.id}/presence",
                                        headers=bearer("not.a.jwt")),
                       401, "InvalidAuthenticationToken")


# -- getPresencesByUserId -------------------------------------------------------------------

async def test_get_presences_by_user_id_matches_the_documented_request_and_answer(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, tenant: Tenant,
    anna: User, ben: User,
) -> None:
    sim.presence.set_client_state(tenant.id, anna.id, ("Busy", "InAMeeting"))
    sim.presence.set_client_state(tenant.id, ben.id, ("Away", "Away"))
    request = {"ids": [anna.id, ben.id]}
    validator("actions/getPresencesByUserId.request.json").validate(request)
    response = await client.post("/v1.0/communications/getPresencesByUserId", json=request,
                                 headers=app_headers)
    assert response.status_code == 200
    body = response.json()
    validator("types/collection.json").validate(body)
    for item in body["value"]:
        check_presence(item)
    documented = fixture("presence-get-by-user-id.response.json")["value"][0]
    assert set(documented) <= set(body["value"][0])
    by_id = {item["id"]: (item["availability"], item["activity"]) for item in body["value"]}
    assert by_id == {anna.id: ("Busy", "InAMeeting"), ben.id: ("Away", "Away")}


async def test_get_presences_by_user_id_takes_650_ids_and_refuses_651(
    client: httpx.AsyncClient, app_headers: dict[str, str], anna: User,
) -> None:
    ids = [anna.id] + [str(uuid.UUID(int=n)) for n in range(1, 650)]
    response = await client.post("/v1.0/communications/getPresencesByUserId",
                                 json={"ids": ids}, headers=app_headers)
    assert response.status_code == 200
    value = response.json()["value"]
    assert len(value) == 650
    assert sum(item["availability"] == "PresenceUnknown" for item in value) == 649
    error = assert_graph_error(
        await client.post("/v1.0/communications/getPresencesByUserId",
                          json={"ids": [*ids, str(uuid.UUID(int=999))]}, headers=app_headers),
        400, "BadRequest")
    assert "650" in error["message"]


async def test_get_presences_by_user_id_refuses_bad_bodies(
    client: httpx.AsyncClient, app_headers: dict[str, str], anna: User,
) -> None:
    url = "/v1.0/communications/getPresencesByUserId"
    for body in ({"ids": [anna.id, "anna@contoso.com"]}, {"ids": anna.id}, {},
                 {"ids": [anna.id], "top": 5}, {"ids": [42]}):
        assert_graph_error(await client.post(url, json=body, headers=app_headers),
                           400, "BadRequest")
    assert_graph_error(await client.post(url, content=b"{\"ids\": [", headers={
        **app_headers, "Content-Type": "application/json"}), 400, "BadRequest")
    assert_graph_error(await client.post(url, content=f'{{"ids": ["{anna.id}"]}}', headers={
        **app_headers, "Content-Type": "text/plain"}), 400, "BadRequest")


async def test_get_presences_by_user_id_needs_presence_read_all(
    client: httpx.AsyncClient, sim: Simulator, anna: User,
) -> None:
    response = await client.post("/v1.0/communications/getPresencesByUserId",
                                 json={"ids": [anna.id]},
                                 headers=bearer(user_token(sim, "anna@contoso.com",
                                                           ["Presence.Read"])))
    assert_graph_error(response, 403, "Forbidden")
    response = await client.post("/v1.0/communications/getPresencesByUserId",
                                 json={"ids": [anna.id]},
                                 headers=bearer(user_token(sim, "anna@contoso.com")))
    assert response.status_code == 200


async def test_get_presences_by_user_id_answers_duplicates_once_and_empty_lists_empty(
    client: httpx.AsyncClient, app_headers: dict[str, str], anna: User, ben: User,
) -> None:
    url = "/v1.0/communications/getPresencesByUserId"
    response = await client.post(url, json={"ids": [ben.id, anna.id.upper(), anna.id]},
                                 headers=app_headers)
    assert [item["id"] for item in response.json()["value"]] == [ben.id, anna.id]
    response = await client.post(url, json={"ids": []}, headers=app_headers)
    assert response.status_code == 200 and response.json()["value"] == []
