"""Across parts: an events subscription is notified of a meeting made through the control API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from m365sim.model import User
from m365sim.simulator import Simulator
from tests.sim.conftest import bearer, user_token


class Hook:
    """A subscriber endpoint: echoes validation tokens, records notification bodies."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        token = request.query_params.get("validationToken")
        response: Response
        if token is not None:
            response = PlainTextResponse(token)
        else:
            self.bodies.append(json.loads(await request.body()))
            response = Response(status_code=202)
        await response(scope, receive, send)


@pytest.fixture
async def hook(sim: Simulator) -> AsyncIterator[Hook]:
    """The whole simulator running, delivering to an in-process endpoint."""
    endpoint = Hook()
    sim.subscriptions.transport = httpx.ASGITransport(app=endpoint)
    task = asyncio.create_task(sim.run())
    await asyncio.sleep(0)
    yield endpoint
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_meeting_created_and_cancelled_reach_an_events_subscriber(
    sim: Simulator, anna: User, client: httpx.AsyncClient, hook: Hook,
) -> None:
    headers = bearer(user_token(sim, "anna@contoso.com", ["Calendars.Read"]))
    expires = (sim.clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = await client.post("/v1.0/subscriptions", headers=headers, json={
        "changeType": "created,deleted", "notificationUrl": "https://hook.test/notify",
        "resource": "me/events", "expirationDateTime": expires, "clientState": "s3cret"})
    assert created.status_code == 201, created.text
    meeting = (await client.post(f"/_sim/tenants/contoso.com/users/{anna.id}/events",
                                 json={"subject": "Sync", "start_in": "1h"})).json()
    await client.delete(f"/_sim/tenants/contoso.com/users/{anna.id}/events/{meeting['id']}")
    for _ in range(200):
        if sum(len(b["value"]) for b in hook.bodies) >= 2:
            break
        await asyncio.sleep(0.01)
    items = [item for body in hook.bodies for item in body["value"]]
    assert [i["changeType"] for i in items] == ["created", "deleted"]
    for item in items:
        assert item["clientState"] == "s3cret"
        assert item["resourceData"]["id"] == meeting["id"]
        assert item["resourceData"]["@odata.type"] == "#microsoft.graph.event"
        assert meeting["id"] in item["resource"]
