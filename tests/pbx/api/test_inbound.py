"""Events and user directories sent by PBXs and apps: validated, all-or-nothing per item."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from m365pbx.core.presence import LineState, PbxPresence
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.base import LineStateEvent, PbxEvent, PbxPresenceEvent, PbxUser

from .conftest import NOW, Keys

EVENTS = "/api/v1/connections/office/events"
USERS = "/api/v1/connections/office/users"


async def drain(connection: ApiConnection) -> list[PbxEvent]:
    """Every event the connection queued so far."""
    await connection.stop()
    return [event async for event in connection.events()]


async def test_events_reach_the_connection_in_order(
    client: httpx.AsyncClient, keys: Keys, office: ApiConnection
) -> None:
    at = "2026-11-25T10:00:00+01:00"
    first = [
        {"key": "alice", "line_state": "ringing", "sequence": 1},
        {"key": "bob", "presence": "dnd", "note": "lunch", "sequence": 4, "at": at},
    ]
    second = [{"key": "alice", "line_state": "Busy", "sequence": 2}]  # spelling PBXs use
    for body in (first, second):
        response = await client.post(EVENTS, json=body, headers=keys.bearer(keys.write))
        assert response.status_code == 202, response.text
    assert await drain(office) == [
        LineStateEvent("alice", LineState.RINGING, NOW, 1),
        PbxPresenceEvent("bob", PbxPresence.DND, datetime(2026, 11, 25, 9, tzinfo=UTC),
                         "lunch", 4),
        LineStateEvent("alice", LineState.ON_THE_PHONE, NOW, 2),
    ]


async def test_the_answer_counts_and_lists_each_item(
    client: httpx.AsyncClient, keys: Keys, office: ApiConnection
) -> None:
    body = [
        {"key": "alice", "line_state": "idle"},
        {"key": "mallory", "line_state": "ringing"},
        {"key": "bob", "presence": "away"},
    ]
    response = await client.post(EVENTS, json=body, headers=keys.bearer(keys.both))
    assert response.status_code == 202
    assert response.json() == {
        "accepted": 2,
        "refused": 1,
        "items": [
            {"index": 0, "key": "alice", "result": "accepted", "code": None, "message": None},
            {"index": 1, "key": "mallory", "result": "refused", "code": "unknown-key",
             "message": "m365pbx follows no user 'mallory' on connection 'office'"},
            {"index": 2, "key": "bob", "result": "accepted", "code": None, "message": None},
        ],
    }
    assert [event.key for event in await drain(office)] == ["alice", "bob"]


async def test_only_unknown_people_change_nothing(
    client: httpx.AsyncClient, keys: Keys, office: ApiConnection
) -> None:
    await office.watch([PbxUser("alice")])
    response = await client.post(EVENTS, json=[{"key": "bob", "line_state": "idle"}],
                                 headers=keys.bearer(keys.write))
    assert response.status_code == 202
    assert response.json()["accepted"] == 0
    assert await drain(office) == []


MALFORMED: list[tuple[str, Any]] = [
    ("not a list", {"key": "alice", "line_state": "idle"}),
    ("unknown line state", [{"key": "alice", "line_state": "dancing"}]),
    ("unknown presence", [{"key": "alice", "presence": "asleep"}]),
    ("neither kind", [{"key": "alice"}]),
    ("both kinds", [{"key": "alice", "line_state": "idle", "presence": "dnd"}]),
    ("note with line state", [{"key": "alice", "line_state": "idle", "note": "x"}]),
    ("empty key", [{"key": "", "line_state": "idle"}]),
    ("blank-padded key", [{"key": " alice", "line_state": "idle"}]),
    ("negative sequence", [{"key": "alice", "line_state": "idle", "sequence": -1}]),
    ("naive time", [{"key": "alice", "line_state": "idle", "at": "2026-11-25T09:00:00"}]),
    ("unknown field", [{"key": "alice", "line_state": "idle", "colour": "red"}]),
    ("too many", [{"key": "alice", "line_state": "idle"}] * 1001),
]


@pytest.mark.parametrize(("case", "body"), MALFORMED, ids=[case for case, _ in MALFORMED])
async def test_a_malformed_body_is_422_and_changes_nothing(
    client: httpx.AsyncClient, keys: Keys, office: ApiConnection, case: str, body: Any
) -> None:
    # The valid first item must not get through when a later one is malformed.
    if isinstance(body, list) and case != "too many":
        body = [{"key": "bob", "line_state": "ringing"}, *body]
    response = await client.post(EVENTS, json=body, headers=keys.bearer(keys.write))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid-body"
    assert error["message"].endswith("nothing was changed")
    assert await drain(office) == []


async def test_validation_messages_say_where_and_what(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    body = [{"key": "alice", "line_state": "idle"}, {"key": "bob", "line_state": "dancing"}]
    response = await client.post(EVENTS, json=body, headers=keys.bearer(keys.write))
    message = response.json()["error"]["message"]
    assert message.startswith("body.1.line_state: Input should be 'idle', 'ringing'")


async def test_invalid_json_is_400_and_changes_nothing(
    client: httpx.AsyncClient, keys: Keys, office: ApiConnection
) -> None:
    response = await client.post(
        EVENTS, content=b'[{"key": "alice", "line_state": "idle"}',
        headers={**keys.bearer(keys.write), "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid-json"
    assert await drain(office) == []


async def test_auth_comes_before_the_body(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.post(EVENTS, content=b"{", headers={"content-type": "application/json"})
    assert response.status_code == 401
    response = await client.post(EVENTS, content=b"{", headers={
        **keys.bearer(keys.read), "content-type": "application/json"})
    assert response.status_code == 403


@pytest.mark.parametrize("path", [EVENTS, USERS])
async def test_write_routes_refuse_read_only_revoked_and_missing_keys(
    client: httpx.AsyncClient, keys: Keys, office: ApiConnection, path: str
) -> None:
    body = [{"key": "alice", "line_state": "idle"}]
    method = client.post if path == EVENTS else client.put
    for headers, status, code in [
        ({}, 401, "missing-api-key"),
        (keys.bearer(keys.revoked), 401, "invalid-api-key"),
        (keys.bearer(keys.read), 403, "insufficient-scope"),
    ]:
        response = await method(path, json=body, headers=headers)
        assert response.status_code == status
        assert response.json()["error"]["code"] == code
    assert await drain(office) == []
    assert await office.list_users() == []


async def test_an_unknown_connection_is_a_404(client: httpx.AsyncClient, keys: Keys) -> None:
    for method, path in (("POST", "events"), ("PUT", "users")):
        response = await client.request(
            method, f"/api/v1/connections/branch/{path}",
            json=[{"key": "carol", "line_state": "idle"}], headers=keys.bearer(keys.write),
        )
        assert response.status_code == 404
        assert response.json() == {"error": {
            "code": "unknown-connection", "message": "there is no API connection 'branch'"}}


async def test_a_full_event_buffer_is_503_and_takes_nothing(
    client: httpx.AsyncClient, keys: Keys, office: ApiConnection
) -> None:
    headers = keys.bearer(keys.write)
    body = [{"key": "alice", "line_state": "idle"}] * 30
    assert (await client.post(EVENTS, json=body, headers=headers)).status_code == 202
    response = await client.post(EVENTS, json=body, headers=headers)  # buffer holds 50
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert len(await drain(office)) == 30


async def test_put_users_replaces_the_directory(
    client: httpx.AsyncClient, keys: Keys, office: ApiConnection
) -> None:
    users = [
        {"key": "alice", "cn": "Alice Archer", "email": "alice@contoso.com",
         "extension": 201, "sip": "sip:201@pbx.contoso.com", "department": "Sales"},
        {"key": "bob", "cn": "Bob Baker"},
    ]
    response = await client.put(USERS, json=users, headers=keys.bearer(keys.write))
    assert response.status_code == 200, response.text
    assert response.json() == {"connection": "office", "users": 2}
    listed = await office.list_users()
    assert listed == [
        PbxUser("alice", {"cn": "Alice Archer", "email": "alice@contoso.com",
                          "extension": "201", "sip": "sip:201@pbx.contoso.com",
                          "department": "Sales"}),
        PbxUser("bob", {"cn": "Bob Baker"}),
    ]
    response = await client.put(USERS, json=[{"key": "carol"}], headers=keys.bearer(keys.both))
    assert [u.key for u in await office.list_users()] == ["carol"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ([{"key": "a"}, {"key": "a"}], 422, "duplicate-key"),
        ([], 422, "empty-directory"),
        ([{"cn": "no key"}], 422, "invalid-body"),
        ([{"key": "a", "groups": ["x"]}], 422, "invalid-body"),
        ({"key": "a"}, 422, "invalid-body"),
    ],
)
async def test_a_bad_directory_changes_nothing(
    client: httpx.AsyncClient, keys: Keys, office: ApiConnection, body: Any, status: int,
    code: str,
) -> None:
    office.replace_users([PbxUser("kept")])
    response = await client.put(USERS, json=body, headers=keys.bearer(keys.write))
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert [u.key for u in await office.list_users()] == ["kept"]


async def test_an_empty_directory_needs_allow_empty(
    client: httpx.AsyncClient, keys: Keys, office: ApiConnection
) -> None:
    office.replace_users([PbxUser("kept")])
    response = await client.put(USERS, params={"allow_empty": "true"}, json=[],
                                headers=keys.bearer(keys.write))
    assert response.status_code == 200
    assert await office.list_users() == []


async def test_events_posted_concurrently_keep_each_request_together(
    client: httpx.AsyncClient, keys: Keys, office: ApiConnection
) -> None:
    headers = keys.bearer(keys.write)

    async def post(sequence: int) -> None:
        body = [{"key": "alice", "line_state": "ringing", "sequence": sequence},
                {"key": "alice", "line_state": "idle", "sequence": sequence}]
        assert (await client.post(EVENTS, json=body, headers=headers)).status_code == 202

    await asyncio.gather(*(post(n) for n in range(1, 11)))
    events = await drain(office)
    pairs = [(events[i].sequence, events[i + 1].sequence) for i in range(0, len(events), 2)]
    assert all(a == b for a, b in pairs)
    assert sorted(a for a, _ in pairs) == list(range(1, 11))


def test_time_zone_offsets_are_kept_as_instants() -> None:
    from m365pbx.pbx.api.inbound import EventIn

    item = EventIn.model_validate({"key": "a", "line_state": "held",
                                   "at": "2026-11-25T10:00:00+01:00"})
    event = item.to_event(NOW)
    assert event.at == datetime(2026, 11, 25, 10, tzinfo=timezone(timedelta(hours=1)))
    assert event.at == NOW
