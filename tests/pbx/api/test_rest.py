"""Reading people and presence over REST, and who may."""

from __future__ import annotations

import httpx
import pytest

from m365pbx.pbx.api.view import MemoryPresenceView

from .conftest import ALICE_BRANCH, Keys

READ_ROUTES = ["/api/v1/people", "/api/v1/people/alice", "/api/v1/presence"]


async def test_people_lists_both_sides_of_everyone(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.get("/api/v1/people", headers=keys.bearer(keys.read))
    assert response.status_code == 200
    people = response.json()["people"]
    assert [(p["connection"], p["key"]) for p in people] == [
        ("branch", "carol"), ("office", "alice"), ("office", "bob")
    ]
    alice = people[1]
    assert alice == {
        "key": "alice",
        "connection": "office",
        "person_id": 1,
        "display_name": "Alice Archer",
        "teams_user_id": "aaaa-1111",
        "teams": {
            "availability": "Busy",
            "activity": "InACall",
            "status_message": "on a call",
            "updated_at": "2026-11-25T09:00:00Z",
        },
        "pbx": {"presence": "busy", "note": "Teams: in a call"},
        "line_state": "idle",
        "pbx_set_by_person": None,
        "session": None,
    }
    bob = people[2]
    assert bob["pbx_set_by_person"] == {"presence": "dnd", "note": "do not disturb"}
    assert bob["session"] == {
        "availability": "Busy", "activity": "InACall", "expires_at": "2026-11-25T09:00:00Z"
    }
    assert people[0]["teams"] is None and people[0]["display_name"] is None


async def test_people_filters_by_connection_and_text(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    headers = keys.bearer(keys.read)

    async def keys_for(params: dict[str, str]) -> list[str]:
        response = await client.get("/api/v1/people", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [f"{p['connection']}/{p['key']}" for p in response.json()["people"]]

    assert await keys_for({"connection": "office"}) == ["office/alice", "office/bob"]
    assert await keys_for({"q": "BAKER"}) == ["office/bob"]  # display name, any case
    assert await keys_for({"q": "car"}) == ["branch/carol"]  # key
    assert await keys_for({"q": "nobody"}) == []
    assert await keys_for({"connection": "branch", "q": "alice"}) == []


async def test_an_unknown_connection_filter_is_a_404(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    for path in ("/api/v1/people", "/api/v1/presence"):
        response = await client.get(path, params={"connection": "nowhere"},
                                    headers=keys.bearer(keys.read))
        assert response.status_code == 404
        assert response.json() == {
            "error": {"code": "unknown-connection",
                      "message": "there is no PBX connection 'nowhere'"}
        }


async def test_one_person(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.get("/api/v1/people/bob", headers=keys.bearer(keys.read))
    assert response.status_code == 200
    assert response.json()["line_state"] == "on-the-phone"
    missing = await client.get("/api/v1/people/zed", headers=keys.bearer(keys.read))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "unknown-person"


async def test_a_key_on_two_connections_needs_the_connection(
    client: httpx.AsyncClient, keys: Keys, view: MemoryPresenceView
) -> None:
    view.put(ALICE_BRANCH)
    headers = keys.bearer(keys.read)
    ambiguous = await client.get("/api/v1/people/alice", headers=headers)
    assert ambiguous.status_code == 400
    assert ambiguous.json()["error"]["code"] == "ambiguous-key"
    assert "branch, office" in ambiguous.json()["error"]["message"]
    chosen = await client.get("/api/v1/people/alice", params={"connection": "branch"},
                              headers=headers)
    assert chosen.json()["display_name"] == "Alice B"


async def test_presence_is_a_compact_map_per_connection(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await client.get("/api/v1/presence", headers=keys.bearer(keys.both))
    assert response.status_code == 200
    assert response.json() == {
        "connections": {
            "branch": {"carol": {}},
            "office": {
                "alice": {"availability": "Busy", "activity": "InACall", "pbx": "busy",
                          "note": "Teams: in a call", "line_state": "idle"},
                "bob": {"availability": "Available", "activity": "Available",
                        "line_state": "on-the-phone", "set_by_person": "dnd"},
            },
        }
    }
    office_only = await client.get("/api/v1/presence", params={"connection": "office"},
                                   headers=keys.bearer(keys.read))
    assert list(office_only.json()["connections"]) == ["office"]


@pytest.mark.parametrize("path", READ_ROUTES)
async def test_read_routes_need_a_key(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing-api-key"
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", READ_ROUTES)
async def test_read_routes_refuse_wrong_revoked_and_write_only_keys(
    client: httpx.AsyncClient, keys: Keys, path: str
) -> None:
    wrong = keys.read[:-4] + ("AAAA" if not keys.read.endswith("AAAA") else "BBBB")
    cases = [
        (wrong, 401, "invalid-api-key"),
        ("not-even-a-key", 401, "invalid-api-key"),
        (keys.revoked, 401, "invalid-api-key"),
        (keys.write, 403, "insufficient-scope"),
    ]
    for key, status, code in cases:
        response = await client.get(path, headers=keys.bearer(key))
        assert response.status_code == status, (key, response.text)
        assert response.json()["error"]["code"] == code
        assert key not in response.text


async def test_a_key_in_the_query_string_is_not_accepted_over_rest(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await client.get("/api/v1/people", params={"key": keys.read})
    assert response.status_code == 401


async def test_basic_auth_is_not_a_bearer_key(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.get("/api/v1/people", headers={"Authorization": f"Basic {keys.read}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing-api-key"


async def test_revoked_message_names_the_client_but_not_the_key(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await client.get("/api/v1/people", headers=keys.bearer(keys.revoked))
    assert response.json()["error"]["message"] == "the API key of client 'old' was revoked"
