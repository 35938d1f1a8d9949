"""Size limits on what clients send, and one error shape under /api/ (issue 18 §7).

Seen: a write key's 20 MB `PUT .../users`, or one 10 MB `cn`, was accepted and replaced
the whole directory; a body that is not UTF-8, or JSON nested 100,000 deep, was answered
with FastAPI's own `{"detail": ...}`. Each refused upload here must change nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from m365pbx.graph.notifications import MAX_BODY_BYTES
from m365pbx.pbx.api import ApiConnection, MemoryApiKeyChecker, MemoryPresenceView, api_router
from m365pbx.pbx.api.body import DEFAULT_BODY_BYTES
from m365pbx.pbx.api.inbound import MAX_EVENTS_BODY_BYTES, MAX_USERS_BODY_BYTES
from m365pbx.pbx.base import PbxUser
from m365pbx.sync.teams_to_pbx.receiver import KnownSubscription, NotificationReceiver
from m365pbx.web.app import create_web_app
from m365pbx.web.graph_webhook import webhook_router
from m365sim.clock import VirtualClock
from tests.sim.conftest import APP_ID, TENANT_ID

USERS = "/api/v1/connections/office/users"
EVENTS = "/api/v1/connections/office/events"
WEBHOOK = "/graph/notifications"
BEFORE = [PbxUser("alice", {"cn": "Alice Archer"}), PbxUser("bob", {"cn": "Bob Baker"})]


@pytest.fixture
async def office(clock: VirtualClock) -> ApiConnection:
    """The API connection, with two users uploaded before each test."""
    connection = ApiConnection("office", clock=clock)
    await connection.start()
    connection.replace_users(BEFORE)
    return connection


@pytest.fixture
def receiver(clock: VirtualClock) -> NotificationReceiver:
    """A Graph notification receiver knowing one subscription."""
    known = KnownSubscription("sub-1", "secret", TENANT_ID, APP_ID)

    async def no_keys(_tenant: str, _kids: set[str]) -> dict[str, Any]:
        return {}

    async def lifecycle(_known: KnownSubscription, _event: str) -> None:
        return None

    return NotificationReceiver(clock, {"sub-1": known}.get, lambda _id: None, no_keys,
                                lambda _readings: None, lambda _k, _ids: None, lifecycle)


@pytest.fixture
def write_key() -> tuple[MemoryApiKeyChecker, str]:
    """Keys, and one with the write scope."""
    checker = MemoryApiKeyChecker()
    return checker, checker.add("pbx", ["write", "read"])


@pytest.fixture
def app(office: ApiConnection, receiver: NotificationReceiver,
        write_key: tuple[MemoryApiKeyChecker, str]) -> FastAPI:
    """The service's web app: webhook and presence API, as m365pbx serves them."""
    checker, _ = write_key
    routers = [webhook_router(receiver, path=WEBHOOK, lifecycle_path=WEBHOOK + "/lifecycle"),
               api_router(MemoryPresenceView([]), {"office": office}, checker)]
    return create_web_app(routers, health=lambda: {"ok": True}, registry=CollectorRegistry())


@pytest.fixture
async def http(app: FastAPI, write_key: tuple[MemoryApiKeyChecker, str]
               ) -> AsyncIterator[httpx.AsyncClient]:
    """A client sending the write key."""
    _, key = write_key
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://m365pbx",
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def error_of(answer: httpx.Response) -> dict[str, str]:
    """The documented error body: exactly {"error": {"code", "message"}}."""
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return dict(body["error"])


def users_json(count: int, filler: int = 0) -> bytes:
    """A directory upload of `count` users, each with `filler` extra characters of fields."""
    users = [{"key": f"user{n}", "cn": f"User {n}", "note": "x" * filler} for n in range(count)]
    return json.dumps(users).encode()


async def unchanged(office: ApiConnection) -> None:
    assert await office.list_users() == BEFORE


async def test_a_20_mb_directory_is_refused_unread_and_changes_nothing(
    http: httpx.AsyncClient, office: ApiConnection, caplog: pytest.LogCaptureFixture,
) -> None:
    body = users_json(20_000, filler=1000)
    assert len(body) > 20_000_000
    with caplog.at_level(logging.WARNING):
        answer = await http.put(USERS, content=body,
                                headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    error = error_of(answer)
    assert error["code"] == "body-too-large" and "16 MiB" in error["message"]
    await unchanged(office)
    assert "refused a body of" in caplog.text and "198.51.100.7" in caplog.text


async def test_a_chunked_body_is_cut_off_once_it_grows_too_large(
    http: httpx.AsyncClient, office: ApiConnection,
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b"["
        for n in range(100_000):
            chunk = json.dumps({"key": f"user{n}", "cn": "x" * 200}).encode() + b","
            sent += len(chunk)
            yield chunk
        yield b'{"key": "last"}]'

    answer = await http.put(USERS, content=chunks(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and error_of(answer)["code"] == "body-too-large"
    await unchanged(office)


async def test_a_directory_under_the_limit_is_accepted(
    http: httpx.AsyncClient, office: ApiConnection,
) -> None:
    body = users_json(50_000)  # the scale m365pbx is built for, with room to spare
    assert 2_000_000 < len(body) < MAX_USERS_BODY_BYTES
    answer = await http.put(USERS, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"connection": "office", "users": 50_000}


@pytest.mark.parametrize(("field", "size"), [("cn", 10_000_000), ("cn", 257),
                                             ("email", 1025), ("department", 1025)])
async def test_an_over_long_field_is_refused_and_changes_nothing(
    http: httpx.AsyncClient, office: ApiConnection, field: str, size: int,
) -> None:
    users = [{"key": "carol", field: "x" * size}, {"key": "dave", "cn": "Dave"}]
    answer = await http.put(USERS, json=users)
    assert answer.status_code == 422
    error = error_of(answer)
    assert error["code"] == "invalid-body" and "nothing was changed" in error["message"]
    assert "xxxx" not in error["message"]  # the input is not echoed back
    await unchanged(office)


async def test_too_many_or_over_long_field_names_are_refused(
    http: httpx.AsyncClient, office: ApiConnection,
) -> None:
    many = {"key": "carol"} | {f"field{n}": "v" for n in range(33)}
    answer = await http.put(USERS, json=[many])
    assert answer.status_code == 422 and "at most 32 fields" in error_of(answer)["message"]
    long_name = {"key": "carol", "f" * 65: "v"}
    answer = await http.put(USERS, json=[long_name])
    assert answer.status_code == 422 and "field name" in error_of(answer)["message"]
    await unchanged(office)


async def test_an_over_long_note_is_refused(http: httpx.AsyncClient) -> None:
    events = [{"key": "alice", "presence": "dnd", "note": "x" * 1001}]
    answer = await http.post(EVENTS, json=events)
    assert answer.status_code == 422 and error_of(answer)["code"] == "invalid-body"


async def test_too_large_a_list_of_events_is_refused(http: httpx.AsyncClient) -> None:
    body = b"[" + b" " * MAX_EVENTS_BODY_BYTES + b"]"
    answer = await http.post(EVENTS, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and "2 MiB" in error_of(answer)["message"]


async def test_a_body_that_is_not_utf8_gets_the_documented_error(
    http: httpx.AsyncClient, office: ApiConnection,
) -> None:
    body = '[{"key": "zoë", "cn": "Zoë"}]'.encode("latin-1")
    answer = await http.put(USERS, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert error_of(answer)["code"] == "invalid-json"
    await unchanged(office)


async def test_json_nested_100000_deep_gets_the_documented_error(
    http: httpx.AsyncClient, office: ApiConnection,
) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    answer = await http.put(USERS, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert error_of(answer)["code"] == "invalid-json"
    await unchanged(office)


async def test_unknown_routes_and_methods_under_api_get_the_documented_error(
    http: httpx.AsyncClient,
) -> None:
    answer = await http.get("/api/v1/nothing-here")
    assert answer.status_code == 404 and error_of(answer)["code"] == "not-found"
    answer = await http.delete(USERS)
    assert answer.status_code == 405 and error_of(answer)["code"] == "method-not-allowed"


async def test_routes_without_a_body_take_at_most_the_default(http: httpx.AsyncClient) -> None:
    answer = await http.request("GET", "/api/v1/people", content=b"x" * (DEFAULT_BODY_BYTES + 1))
    assert answer.status_code == 413 and error_of(answer)["code"] == "body-too-large"


async def test_the_graph_webhook_takes_batches_of_several_megabytes(
    http: httpx.AsyncClient, receiver: NotificationReceiver,
) -> None:
    # Rich notifications carry encrypted content: a batch of them may take a few megabytes.
    item = {"subscriptionId": "sub-1", "clientState": "secret", "changeType": "updated",
            "tenantId": TENANT_ID, "resource": "communications/presences/u1",
            "resourceData": {"id": "u1"}, "padding": "x" * 30_000}
    body = json.dumps({"value": [item] * 100}).encode()
    assert DEFAULT_BODY_BYTES < 3_000_000 < len(body) < MAX_BODY_BYTES
    answer = await http.post(WEBHOOK, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 202, answer.text
    too_big = await http.post(WEBHOOK, content=b" " * (MAX_BODY_BYTES + 1))
    assert too_big.status_code == 413
    assert receiver.counters["too_large"] == 1  # counted by the webhook's own cap


async def test_errors_outside_the_api_keep_their_own_format(http: httpx.AsyncClient) -> None:
    answer = await http.get("/nothing-here")
    assert answer.status_code == 404 and answer.json() == {"detail": "Not Found"}
