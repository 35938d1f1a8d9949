"""The Graph webhook routes over HTTP (in-process ASGI): the validation handshake, size
limits, and the receiver's answers (issue 18, item 13)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from m365pbx.graph.notifications import MAX_BODY_BYTES
from m365pbx.sync.teams_to_pbx.receiver import KnownSubscription, NotificationReceiver
from m365pbx.web.graph_webhook import WebhookFront, webhook_router
from m365sim.clock import VirtualClock
from tests.sim.conftest import APP_ID, TENANT_ID

PATH = "/graph/notifications"
SECRET = "client-state-secret-77"
SUBSCRIPTION = "sub-1"


@pytest.fixture
def received() -> list[tuple[str, list[str]]]:
    """Basic notifications handed on (subscription id, user ids)."""
    return []


@pytest.fixture
def receiver(clock: VirtualClock, received: list[tuple[str, list[str]]]) -> NotificationReceiver:
    """A receiver knowing one subscription."""
    known = KnownSubscription(SUBSCRIPTION, SECRET, TENANT_ID, APP_ID)

    async def no_keys(_tenant: str, _kids: set[str]) -> dict[str, Any]:
        return {}

    async def lifecycle(_known: KnownSubscription, _event: str) -> None:
        return None

    return NotificationReceiver(clock, {SUBSCRIPTION: known}.get, lambda _id: None, no_keys,
                                lambda _readings: None,
                                lambda k, ids: received.append((k.id, ids)), lifecycle)


@pytest.fixture(params=["routes", "front"])
async def http(receiver: NotificationReceiver,
               request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app with only the webhook routes, reached through FastAPI's routing
    or, as the service serves them, through the front that bypasses it."""
    app: Any = FastAPI()
    app.include_router(webhook_router(receiver, path=PATH, lifecycle_path=PATH + "/lifecycle"))
    if request.param == "front":
        app = WebhookFront(app, receiver, (PATH, PATH + "/lifecycle"))
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="https://m365pbx.test") as client:
        yield client


def notification(client_state: str = SECRET) -> dict[str, Any]:
    """One basic presence notification."""
    return {"value": [{"subscriptionId": SUBSCRIPTION, "clientState": client_state,
                       "changeType": "updated", "tenantId": TENANT_ID,
                       "resource": "communications/presences/u1", "resourceData": {"id": "u1"}}]}


@pytest.mark.parametrize("path", [PATH, PATH + "/lifecycle"])
async def test_the_validation_handshake_echoes_the_decoded_token_as_text(
    http: httpx.AsyncClient, path: str,
) -> None:
    answer = await http.post(path, params={"validationToken": "Validation: Testing client+1"})
    assert answer.status_code == 200
    assert answer.text == "Validation: Testing client+1"
    assert answer.headers["content-type"].startswith("text/plain")


async def test_an_empty_or_oversized_validation_token_is_refused(
    http: httpx.AsyncClient, receiver: NotificationReceiver,
) -> None:
    assert (await http.post(PATH, params={"validationToken": ""})).status_code == 400
    assert (await http.post(PATH, params={"validationToken": "x" * 5000})).status_code == 400
    assert receiver.health()["reasons"]["malformed"]["count"] == 2


async def test_a_browser_get_does_not_look_like_a_working_endpoint(
    http: httpx.AsyncClient,
) -> None:
    assert (await http.get(PATH)).status_code == 404
    assert (await http.get(PATH + "/lifecycle")).status_code == 404


async def test_a_genuine_notification_is_accepted_with_202(
    http: httpx.AsyncClient, receiver: NotificationReceiver,
    received: list[tuple[str, list[str]]],
) -> None:
    answer = await http.post(PATH, json=notification())
    assert answer.status_code == 202
    await receiver.drain()
    assert received == [(SUBSCRIPTION, ["u1"])]


async def test_a_forged_client_state_gets_403_and_is_shown_with_its_sender(
    http: httpx.AsyncClient, receiver: NotificationReceiver,
    received: list[tuple[str, list[str]]],
) -> None:
    answer = await http.post(PATH, json=notification("guessed"))
    assert answer.status_code == 403
    assert "client state does not match" in answer.text
    await receiver.drain()
    assert received == []
    assert receiver.health()["reasons"]["forged"]["count"] == 1


async def test_a_malformed_body_gets_400_saying_why(http: httpx.AsyncClient) -> None:
    answer = await http.post(PATH, content=b"{not json", headers={"content-type": "text/plain"})
    assert answer.status_code == 400
    assert "not JSON" in answer.text


async def test_a_body_declared_too_large_is_refused_with_413_unread(
    http: httpx.AsyncClient, receiver: NotificationReceiver,
) -> None:
    body = b" " * (MAX_BODY_BYTES + 1)
    answer = await http.post(PATH, content=body)
    assert answer.status_code == 413
    assert receiver.health()["reasons"]["too_large"]["count"] == 1


async def test_a_chunked_body_growing_too_large_is_cut_off_with_413(
    http: httpx.AsyncClient, receiver: NotificationReceiver,
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(100):  # 100 MiB if it were all read
            sent += 1
            yield b" " * (1024 * 1024)

    answer = await http.post(PATH, content=chunks())
    assert answer.status_code == 413
    assert sent <= 6  # reading stopped just past the limit (4 MiB)
    assert receiver.counters["too_large"] == 1


async def test_a_batch_as_large_as_graph_sends_is_accepted(
    http: httpx.AsyncClient, receiver: NotificationReceiver,
) -> None:
    item = notification()["value"][0]
    batch = {"value": [item] * 1000}  # Graph batches up to 1,000 (rich: bigger items)
    assert len(json.dumps(batch)) < MAX_BODY_BYTES
    answer = await http.post(PATH, json=batch)
    assert answer.status_code == 202


async def test_the_front_answers_500_when_the_webhook_fails_and_passes_other_routes_on(
    receiver: NotificationReceiver, caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()
    app.include_router(webhook_router(receiver, path=PATH, lifecycle_path=PATH + "/lifecycle"))

    @app.get("/livez")
    async def livez() -> dict[str, bool]:
        return {"live": True}

    async def broken(body: bytes, *, source: str | None = None) -> Any:
        raise RuntimeError("the receiver broke")

    receiver.receive = broken  # type: ignore[method-assign]
    front = WebhookFront(app, receiver, (PATH, PATH + "/lifecycle"))
    transport = httpx.ASGITransport(app=front)
    async with httpx.AsyncClient(transport=transport, base_url="https://m365pbx.test") as client:
        answer = await client.post(PATH, json=notification())
        assert (answer.status_code, answer.text) == (500, "Internal Server Error")
        assert "the webhook failed to answer a POST to /graph/notifications" in caplog.text
        assert (await client.get("/livez")).json() == {"live": True}
        assert (await client.get(PATH)).status_code == 404
