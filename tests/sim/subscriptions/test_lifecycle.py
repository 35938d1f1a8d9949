"""Lifecycle notifications: reauthorizationRequired (and the pause when ignored),
subscriptionRemoved and missed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from m365sim.clock import VirtualClock
from m365sim.events import ResourceChange
from m365sim.simulator import Simulator
from tests.sim.conftest import TENANT_ID, app_token, bearer
from tests.sim.schemas import fixture, validator
from tests.sim.subscriptions.conftest import (
    HOOK,
    presence_change,
    subscription_body,
    svc_headers,
    user_id,
)
from tests.sim.subscriptions.helpers import Receiver, eventually, settle

pytestmark = pytest.mark.usefixtures("running")
LIFECYCLE = "https://hooks.contoso.test/api/lifecycle"


async def _subscribe(client: httpx.AsyncClient, sim: Simulator, resource: str,
                     headers: dict[str, str], **extra: Any) -> str:
    body = subscription_body(sim, resource, lifecycleNotificationUrl=LIFECYCLE, **extra)
    response = await client.post("/v1.0/subscriptions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    subscription_id: str = response.json()["id"]
    return subscription_id


def _event_change(user: str) -> ResourceChange:
    return ResourceChange(tenant_id=TENANT_ID, resource=f"users/{user}/events/AAMk1",
                          change_type="created", resource_id="AAMk1",
                          odata_type="#microsoft.graph.event",
                          odata_id=f"Users/{user}/Events/AAMk1")


async def test_reauthorization_is_requested_before_the_subscription_expires(
    sim: Simulator, clock: VirtualClock, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    subscription_id = await _subscribe(client, sim, f"communications/presences/{anna}",
                                       svc_headers(sim), minutes=60)
    await clock.advance(44 * 60)
    await settle()
    assert receiver.lifecycle() == []
    await clock.advance(60)
    await eventually(lambda: len(receiver.lifecycle()) == 1)
    post = receiver.posts[-1]
    assert post["path"] == "/api/lifecycle"
    validator("types/changeNotificationCollection.json").validate(post["body"])
    [item] = post["body"]["value"]
    assert set(item) == set(fixture("lifecycle-reauthorization-required.json")["value"][0])
    assert item["lifecycleEvent"] == "reauthorizationRequired"
    assert item["subscriptionId"] == subscription_id
    assert item["clientState"] == "secret-state"
    assert (await client.get("/_sim/subscriptions")).json()["value"][0]["paused"] is False


async def test_unanswered_challenges_repeat_every_interval(
    sim: Simulator, clock: VirtualClock, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    sim.subscriptions.settings.reauthorization_lead_s = 40 * 60
    await _subscribe(client, sim, "users", bearer(app_token(sim)), minutes=600)
    await clock.advance(20 * 60)  # the token has 40 minutes left
    await eventually(lambda: len(receiver.lifecycle()) == 1)
    await clock.advance(15 * 60)
    await eventually(lambda: len(receiver.lifecycle()) == 2)
    await clock.advance(15 * 60)
    await eventually(lambda: len(receiver.lifecycle()) == 3)
    await clock.advance(15 * 60)  # past the token's expiry: no more challenges
    await settle()
    assert len(receiver.lifecycle()) == 3


async def test_an_ignored_challenge_pauses_delivery_until_reauthorized(
    sim: Simulator, clock: VirtualClock, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    subscription_id = await _subscribe(client, sim, f"communications/presences/{anna}",
                                       svc_headers(sim, lifetime_s=1800), minutes=60)
    await clock.advance(15 * 60)  # 15 minutes before the token runs out
    await eventually(lambda: len(receiver.lifecycle()) == 1)
    sim.bus.publish(presence_change(anna))  # still flowing while there is time
    await eventually(lambda: len(receiver.changes()) == 1)
    await clock.advance(15 * 60)
    sim.bus.publish(presence_change(anna, "Away", "Away"))
    await settle()
    assert len(receiver.changes()) == 1
    assert sim.subscriptions.dispatcher.log[-1]["outcome"] == "paused"
    control = (await client.get("/_sim/subscriptions")).json()["value"][0]
    assert control["paused"] is True
    answer = await client.post(f"/v1.0/subscriptions/{subscription_id}/reauthorize",
                               headers=svc_headers(sim))
    assert answer.status_code == 204
    sim.bus.publish(presence_change(anna, "Available", "Available"))
    await eventually(lambda: len(receiver.changes()) == 2)
    assert receiver.changes()[-1]["subscriptionExpirationDateTime"].startswith(
        "2026-01-05T09:00:00")


async def test_renewing_answers_the_challenge_too(
    sim: Simulator, clock: VirtualClock, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    subscription_id = await _subscribe(client, sim, f"communications/presences/{anna}",
                                       svc_headers(sim), minutes=60)
    await clock.advance(45 * 60)
    await eventually(lambda: len(receiver.lifecycle()) == 1)
    renewal = {"expirationDateTime": subscription_body(sim, "x", minutes=60)["expirationDateTime"]}
    patched = await client.patch(f"/v1.0/subscriptions/{subscription_id}", json=renewal,
                                 headers=svc_headers(sim))
    assert patched.status_code == 200
    await clock.advance(40 * 60)
    await settle()
    assert len(receiver.lifecycle()) == 1  # the fresh token and expiry are 60 minutes away
    sim.bus.publish(presence_change(anna))
    await eventually(lambda: len(receiver.changes()) == 1)


async def test_subscriptions_without_a_lifecycle_url_are_never_paused(
    sim: Simulator, clock: VirtualClock, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    body = subscription_body(sim, f"communications/presences/{anna}", minutes=60)
    response = await client.post("/v1.0/subscriptions", json=body,
                                 headers=svc_headers(sim, lifetime_s=600))
    assert response.status_code == 201
    await clock.advance(30 * 60)
    sim.bus.publish(presence_change(anna))
    await eventually(lambda: len(receiver.changes()) == 1)
    assert receiver.lifecycle() == []


async def test_control_route_requests_reauthorization_and_pauses(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    subscription_id = await _subscribe(client, sim, f"communications/presences/{anna}",
                                       svc_headers(sim))
    answer = await client.post(f"/_sim/subscriptions/{subscription_id}/lifecycle",
                               json={"event": "reauthorizationRequired", "pause_after_s": 0})
    assert answer.status_code == 200 and answer.json()["sent"] is True
    await eventually(lambda: len(receiver.lifecycle()) == 1)
    sim.bus.publish(presence_change(anna))
    await settle()
    assert receiver.changes() == []


async def test_subscription_removed_deletes_the_outlook_subscription(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    headers = bearer(app_token(sim, ["Calendars.Read"]))
    subscription_id = await _subscribe(client, sim, f"users/{anna}/events", headers,
                                       changeType="created")
    answer = await client.post(f"/_sim/subscriptions/{subscription_id}/lifecycle",
                               json={"event": "subscriptionRemoved"})
    assert answer.json() == {"subscriptionId": subscription_id, "event": "subscriptionRemoved",
                             "sent": True, "removed": True}
    await eventually(lambda: len(receiver.lifecycle()) == 1)
    assert receiver.lifecycle()[0]["lifecycleEvent"] == "subscriptionRemoved"
    gone = await client.get(f"/v1.0/subscriptions/{subscription_id}", headers=headers)
    assert gone.status_code == 404
    sim.bus.publish(_event_change(anna))
    await settle()
    assert receiver.changes() == []


async def test_outlook_only_events_are_refused_for_presence(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    subscription_id = await _subscribe(client, sim, f"communications/presences/{anna}",
                                       svc_headers(sim))
    for event in ("subscriptionRemoved", "missed"):
        answer = await client.post(f"/_sim/subscriptions/{subscription_id}/lifecycle",
                                   json={"event": event})
        assert answer.status_code == 400
    bad = await client.post(f"/_sim/subscriptions/{subscription_id}/lifecycle",
                            json={"event": "explode"})
    assert bad.status_code == 400
    unknown = await client.post("/_sim/subscriptions/nope/lifecycle",
                                json={"event": "missed"})
    assert unknown.status_code == 404


async def test_dropped_outlook_notifications_bring_a_missed_event(
    sim: Simulator, clock: VirtualClock, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    headers = bearer(app_token(sim, ["Calendars.Read"]))
    await _subscribe(client, sim, f"users/{anna}/events", headers, changeType="created",
                     minutes=600)
    sim.subscriptions.settings.retry_window_s = 60
    receiver.fail_next = 1000
    sim.bus.publish(_event_change(anna))
    await eventually(lambda: len(receiver.posts) == 1)
    for _ in range(8):
        await clock.advance(10)
        await settle(5)
    missed = [p for p in receiver.posts if p["path"] == "/api/lifecycle"]
    assert missed and missed[0]["body"]["value"][0]["lifecycleEvent"] == "missed"
    assert any(e["outcome"] == "dropped" for e in sim.subscriptions.dispatcher.log)


async def test_lifecycle_without_url_is_not_sent(sim: Simulator, client: httpx.AsyncClient,
                                                 receiver: Receiver) -> None:
    anna = user_id(sim, "anna@contoso.com")
    body = subscription_body(sim, f"users/{anna}/contacts", changeType="created")
    created = await client.post("/v1.0/subscriptions", json=body,
                                headers=bearer(app_token(sim, ["Contacts.Read"])))
    subscription_id = created.json()["id"]
    answer = await client.post(f"/_sim/subscriptions/{subscription_id}/lifecycle",
                               json={"event": "missed"})
    assert answer.json()["sent"] is False
    await settle()
    assert receiver.lifecycle() == []
    assert HOOK.endswith("/api/notify")
