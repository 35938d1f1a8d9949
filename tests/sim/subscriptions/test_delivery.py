"""Delivering change notifications: matching, batching, latency, retries, throttling, faults."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from m365sim.clock import VirtualClock
from m365sim.events import ResourceChange
from m365sim.simulator import Simulator
from tests.sim.conftest import TENANT_ID, app_token, bearer, user_token
from tests.sim.schemas import fixture, validator
from tests.sim.subscriptions.conftest import (
    presence_change,
    subscription_body,
    svc_headers,
    user_id,
)
from tests.sim.subscriptions.helpers import Receiver, eventually, settle

pytestmark = pytest.mark.usefixtures("running")


async def _subscribe(client: httpx.AsyncClient, sim: Simulator, resource: str,
                     headers: dict[str, str] | None = None, **extra: Any) -> str:
    body = subscription_body(sim, resource, **extra)
    response = await client.post("/v1.0/subscriptions", json=body,
                                 headers=headers or svc_headers(sim))
    assert response.status_code == 201, response.text
    subscription_id: str = response.json()["id"]
    return subscription_id


def _user_change(user: str, change_type: str = "updated") -> ResourceChange:
    return ResourceChange(tenant_id=TENANT_ID, resource=f"users/{user}", change_type=change_type,
                          resource_id=user, odata_type="#microsoft.graph.user",
                          odata_id=f"users/{user}")


async def test_basic_presence_notification_carries_ids_only(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    subscription_id = await _subscribe(client, sim, f"communications/presences/{anna}")
    sim.bus.publish(presence_change(anna))
    await eventually(lambda: len(receiver.posts) == 1)
    post = receiver.posts[0]
    assert post["content_type"].startswith("application/json")
    validator("types/changeNotificationCollection.json").validate(post["body"])
    assert "validationTokens" not in post["body"]
    [item] = post["body"]["value"]
    expected = fixture("notification-presence.json")["value"][0]
    assert set(item) == set(expected)
    assert item["subscriptionId"] == subscription_id
    assert item["clientState"] == "secret-state"
    assert item["tenantId"] == TENANT_ID == item["organizationId"]
    assert item["resource"] == f"communications/presences/{anna}"
    assert item["resourceData"] == {"@odata.type": "#microsoft.graph.presence",
                                    "@odata.id": f"users/{anna}/presence", "id": anna}
    log = (await client.get("/_sim/deliveries")).json()["value"]
    assert [e["outcome"] for e in log if e["kind"] == "notification"] == ["delivered"]


async def test_deliveries_keep_the_query_string_of_the_url(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    await _subscribe(client, sim, f"communications/presences/{anna}",
                     notificationUrl="https://hooks.contoso.test/api/notify?account=svc&n=1")
    sim.bus.publish(presence_change(anna))
    await eventually(lambda: len(receiver.posts) == 1)
    assert receiver.posts[0]["query"] == {"account": "svc", "n": "1"}
    assert receiver.posts[0]["path"] == "/api/notify"


async def test_only_matching_changes_are_notified(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    ben = user_id(sim, "ben@contoso.com")
    await _subscribe(client, sim, f"communications/presences/{anna}")
    sim.bus.publish(presence_change(ben))
    sim.bus.publish(presence_change(anna, tenant_id="00000000-0000-0000-0000-000000000001"))
    sim.bus.publish(_user_change(anna))
    await settle()
    assert receiver.posts == []


async def test_bulk_presence_subscription_notifies_each_listed_user(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    ben = user_id(sim, "ben@contoso.com")
    mia = user_id(sim, "mfa@contoso.com")
    await _subscribe(client, sim, f"/communications/presences?$filter=id in ('{anna}', '{ben}')")
    for user in (anna, mia, ben):
        sim.bus.publish(presence_change(user))
    await eventually(lambda: len(receiver.changes()) == 2)
    await settle()
    assert [i["resourceData"]["id"] for i in receiver.changes()] == [anna, ben]


async def test_users_subscriptions_see_user_changes_of_their_scope(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    ben = user_id(sim, "ben@contoso.com")
    app = bearer(app_token(sim))
    everyone = await _subscribe(client, sim, "users", headers=app, changeType="updated,deleted")
    only_anna = await _subscribe(client, sim, f"users/{anna}", headers=app, changeType="deleted")
    sim.bus.publish(_user_change(ben))
    sim.bus.publish(_user_change(anna, "deleted"))
    await eventually(lambda: len(receiver.changes()) == 3)
    await settle()
    got = sorted((i["subscriptionId"], i["resourceData"]["id"], i["changeType"])
                 for i in receiver.changes())
    assert got == sorted([(everyone, ben, "updated"), (everyone, anna, "deleted"),
                          (only_anna, anna, "deleted")])
    assert all("organizationId" not in i for i in receiver.changes())


async def test_event_and_contact_subscriptions(sim: Simulator, client: httpx.AsyncClient,
                                               receiver: Receiver) -> None:
    anna = user_id(sim, "anna@contoso.com")
    headers = bearer(user_token(sim, "anna@contoso.com", ["Calendars.Read", "Contacts.Read"]))
    events = await _subscribe(client, sim, "me/events", headers=headers,
                              changeType="created,deleted")
    contacts = await _subscribe(client, sim, f"users/{anna}/contacts", headers=headers,
                                changeType="updated")
    for kind, change_type in (("events", "created"), ("events", "updated"),
                              ("contacts", "updated"), ("contacts", "created")):
        sim.bus.publish(ResourceChange(
            tenant_id=TENANT_ID, resource=f"users/{anna}/{kind}/AAMk1", change_type=change_type,
            resource_id="AAMk1", odata_type=f"#microsoft.graph.{kind[:-1]}",
            odata_id=f"Users/{anna}/{kind.title()}/AAMk1",
            resource_data={"@odata.etag": 'W/"CQAAABYAAA"', "id": "AAMk1"}))
    await eventually(lambda: len(receiver.changes()) == 2)
    await settle()
    got = {(i["subscriptionId"], i["changeType"]) for i in receiver.changes()}
    assert got == {(events, "created"), (contacts, "updated")}
    for item in receiver.changes():
        assert item["resourceData"]["@odata.etag"] == 'W/"CQAAABYAAA"'
        assert set(item) <= set(fixture("notification-message.json")["value"][0])
        validator("types/changeNotificationCollection.json").validate({"value": [item]})


async def test_notifications_for_one_url_share_a_post(
    sim: Simulator, clock: VirtualClock, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    ben = user_id(sim, "ben@contoso.com")
    first = await _subscribe(client, sim, f"communications/presences/{anna}")
    second = await _subscribe(client, sim, f"communications/presences/{ben}",
                              headers=bearer(user_token(sim, "anna@contoso.com")))
    sim.settings.notification_latency_s = (2.0, 2.0)
    sim.bus.publish(presence_change(anna))
    sim.bus.publish(presence_change(ben))
    await settle()
    assert receiver.posts == []  # the latency is on the simulator's clock
    await clock.advance(2)
    await eventually(lambda: len(receiver.items) == 2)
    assert len(receiver.posts) == 1
    assert {i["subscriptionId"] for i in receiver.items} == {first, second}


async def test_batches_hold_at_most_max_batch_notifications(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    await _subscribe(client, sim, f"communications/presences/{anna}")
    sim.subscriptions.settings.max_batch = 3
    for _ in range(7):
        sim.bus.publish(presence_change(anna))
    await eventually(lambda: len(receiver.items) == 7)
    assert [len(p["body"]["value"]) for p in receiver.posts] == [3, 3, 1]


async def test_failed_deliveries_are_retried_with_backoff(
    sim: Simulator, clock: VirtualClock, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    await _subscribe(client, sim, f"communications/presences/{anna}")
    receiver.fail_next = 2
    sim.bus.publish(presence_change(anna))
    await eventually(lambda: len(receiver.posts) == 1)
    await clock.advance(9)
    await settle()
    assert len(receiver.posts) == 1  # first retry after 10 s
    await clock.advance(1)
    await eventually(lambda: len(receiver.posts) == 2)
    await clock.advance(19)
    await settle()
    assert len(receiver.posts) == 2  # then after 20 s more
    await clock.advance(1)
    await eventually(lambda: len(receiver.posts) == 3)
    assert receiver.posts[0]["body"] == receiver.posts[2]["body"]
    log = [e for e in sim.subscriptions.dispatcher.log if e["kind"] == "notification"]
    assert [(e["outcome"], e["status"], e["attempt"]) for e in log] == [
        ("failed", 503, 1), ("failed", 503, 2), ("delivered", 202, 3)]


async def test_slow_answers_time_out_and_are_retried(
    sim: Simulator, clock: VirtualClock, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    await _subscribe(client, sim, f"communications/presences/{anna}")
    sim.subscriptions.settings.delivery_timeout_s = 0.05
    receiver.delay_s = 0.5
    sim.bus.publish(presence_change(anna))
    await eventually(lambda: any(e["outcome"] == "failed"
                                 for e in sim.subscriptions.dispatcher.log))
    receiver.delay_s = 0
    await clock.advance(10)
    await eventually(lambda: sim.subscriptions.dispatcher.delivered == 1)


async def test_notifications_are_dropped_after_the_retry_window(
    sim: Simulator, clock: VirtualClock, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    await _subscribe(client, sim, "users", headers=bearer(app_token(sim)), minutes=600)
    receiver.status = 500
    sim.bus.publish(_user_change(anna))
    await eventually(lambda: len(receiver.posts) == 1)
    for _ in range(4 * 6 + 10):
        await clock.advance(600)
        await settle(5)
    log = [e for e in sim.subscriptions.dispatcher.log if e["kind"] == "notification"]
    assert log[-1]["outcome"] == "dropped"
    assert "retry window" in log[-1]["error"]
    attempts = len(receiver.posts)
    assert 20 <= attempts <= 40  # backoff, then every 10 minutes, for 4 hours
    await clock.advance(3600)
    await settle()
    assert len(receiver.posts) == attempts


async def test_a_slow_endpoint_is_throttled_then_dropped(
    sim: Simulator, clock: VirtualClock, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    await _subscribe(client, sim, f"communications/presences/{anna}")
    settings = sim.subscriptions.settings
    settings.slow_response_s = 0.0  # every answer counts as slow
    settings.throttle_drop_share = 1.01  # first only the delay
    for _ in range(100):
        sim.bus.publish(presence_change(anna))
    await eventually(lambda: len(receiver.items) == 100)
    sim.bus.publish(presence_change(anna, "Away", "Away"))
    await settle()
    assert len(receiver.items) == 100  # held back 10 minutes
    await clock.advance(599)
    await settle()
    assert len(receiver.items) == 100
    await clock.advance(1)
    await eventually(lambda: len(receiver.items) == 101)
    # The counters were flushed with the new 10-minute window: the next 100 go out and
    # are judged; at 15 % slow the endpoint's notifications are then dropped.
    settings.throttle_drop_share = 0.15
    for _ in range(100):
        sim.bus.publish(presence_change(anna))
    await eventually(lambda: len(receiver.items) == 201)
    sim.bus.publish(presence_change(anna))
    await settle()
    assert len(receiver.items) == 201
    assert sim.subscriptions.dispatcher.log[-1]["outcome"] == "dropped"


async def test_injected_loss_and_duplicates(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    await _subscribe(client, sim, f"communications/presences/{anna}")
    put = await client.put("/_sim/delivery", json={"loss": 1.0, "seed": 7})
    assert put.status_code == 200 and put.json()["loss"] == 1.0
    sim.bus.publish(presence_change(anna))
    await settle()
    assert receiver.posts == []
    assert sim.subscriptions.dispatcher.log[-1]["outcome"] == "lost"

    await client.put("/_sim/delivery", json={"loss": 0, "duplicate": 1.0})
    sim.bus.publish(presence_change(anna, "Away", "Away"))
    await eventually(lambda: len(receiver.posts) == 2)
    assert receiver.posts[0]["body"] == receiver.posts[1]["body"]


async def test_reordering_changes_the_order_of_arrival(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    users = [user_id(sim, u) for u in ("anna@contoso.com", "ben@contoso.com",
                                       "mfa@contoso.com", "svc-presence@contoso.com")]
    await _subscribe(client, sim, "/communications/presences?$filter=id in ({})".format(
        ",".join(f"'{u}'" for u in users)))
    await client.put("/_sim/delivery", json={"reorder": True, "seed": 11})
    published = users * 5
    for user in published:
        sim.bus.publish(presence_change(user))
    await eventually(lambda: len(receiver.items) == len(published))
    arrived = [i["resourceData"]["id"] for i in receiver.items]
    assert sorted(arrived) == sorted(published)
    assert arrived != published


async def test_delivery_control_routes_check_their_input(sim: Simulator,
                                                         client: httpx.AsyncClient) -> None:
    for body in ({"loss": 2}, {"duplicate": -0.1}, {"latency_ms": [5, 1]}, {"reorder": "yes"},
                 {"latency_ms": "fast"}, {"bogus": 1}, {"max_batch": 0}):
        answer = await client.put("/_sim/delivery", json=body)
        assert answer.status_code == 400, body
        validator("types/odata-error.json").validate(answer.json())
    ok = await client.put("/_sim/delivery", json={"latency_ms": [10, 20]})
    assert ok.json()["latency_ms"] == [10.0, 20.0]
    assert sim.settings.notification_latency_s == (0.01, 0.02)
    assert (await client.get("/_sim/delivery")).json()["latency_ms"] == [10.0, 20.0]
    assert (await client.get("/_sim/deliveries?limit=x")).status_code == 400
    not_json = await client.put("/_sim/delivery", content=b"{",
                                headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400
    # What curl -d sends: the control API reads it as JSON all the same.
    curl = await client.put("/_sim/delivery", content=b'{"loss": 0.5}',
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert curl.status_code == 200 and sim.subscriptions.settings.loss == 0.5


async def test_control_lists_subscriptions_with_their_secrets_and_the_log(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    subscription_id = await _subscribe(client, sim, f"communications/presences/{anna}")
    listed = (await client.get("/_sim/subscriptions")).json()["value"]
    assert [(s["id"], s["clientState"], s["userIds"], s["paused"]) for s in listed] == [
        (subscription_id, "secret-state", [anna], False)]
    for _ in range(3):
        sim.bus.publish(presence_change(anna))
    await eventually(lambda: len(receiver.items) == 3)
    log = (await client.get("/_sim/deliveries?limit=1")).json()
    assert len(log["value"]) == 1 and log["delivered"] == 3
    assert log["value"][0]["subscriptionIds"] == [subscription_id]
