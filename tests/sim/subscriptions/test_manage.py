"""GET, PATCH, DELETE and reauthorize on /v1.0/subscriptions, and expiry."""

from __future__ import annotations

import httpx
import pytest

from m365sim.clock import VirtualClock
from m365sim.simulator import Simulator
from tests.sim.conftest import app_token, bearer, user_token
from tests.sim.schemas import validator
from tests.sim.subscriptions.conftest import (
    presence_change,
    subscription_body,
    svc_headers,
    user_id,
)
from tests.sim.subscriptions.helpers import Receiver, settle

pytestmark = pytest.mark.usefixtures("running")


async def _presence(client: httpx.AsyncClient, sim: Simulator, upn: str = "anna@contoso.com",
                    headers: dict[str, str] | None = None, **extra: object) -> dict[str, object]:
    body = subscription_body(sim, f"communications/presences/{user_id(sim, upn)}", **extra)
    response = await client.post("/v1.0/subscriptions", json=body,
                                 headers=headers or svc_headers(sim))
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


async def test_list_shows_only_the_callers_subscriptions_without_client_state(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    mine = await _presence(client, sim)
    anna = bearer(user_token(sim, "anna@contoso.com"))
    theirs = await _presence(client, sim, "ben@contoso.com", headers=anna)
    listed = await client.get("/v1.0/subscriptions", headers=svc_headers(sim))
    assert listed.status_code == 200
    body = listed.json()
    validator("types/collection.json").validate(body)
    assert [s["id"] for s in body["value"]] == [mine["id"]]
    assert body["value"][0]["clientState"] is None
    for item in body["value"]:
        validator("types/subscription.json").validate(item)
    # The application sees what the app created for any user.
    as_app = await client.get("/v1.0/subscriptions", headers=bearer(app_token(sim)))
    assert {s["id"] for s in as_app.json()["value"]} == {mine["id"], theirs["id"]}
    # By id: the owner sees clientState; another user of the app gets 404.
    own = await client.get(f"/v1.0/subscriptions/{mine['id']}", headers=svc_headers(sim))
    assert own.json()["clientState"] == "secret-state"
    other = await client.get(f"/v1.0/subscriptions/{mine['id']}", headers=anna)
    assert other.status_code == 404
    validator("types/odata-error.json").validate(other.json())


async def test_list_is_paged_with_a_next_link(sim: Simulator, client: httpx.AsyncClient) -> None:
    headers = bearer(app_token(sim))
    for _ in range(101):
        body = subscription_body(sim, "users", minutes=600)
        assert (await client.post("/v1.0/subscriptions", json=body,
                                  headers=headers)).status_code == 201
    first = (await client.get("/v1.0/subscriptions", headers=headers)).json()
    assert len(first["value"]) == 100
    second = (await client.get(first["@odata.nextLink"], headers=headers)).json()
    assert len(second["value"]) == 1 and "@odata.nextLink" not in second
    ids = {s["id"] for s in first["value"]} | {s["id"] for s in second["value"]}
    assert len(ids) == 101
    bad = await client.get("/v1.0/subscriptions?$skiptoken=%%%", headers=headers)
    assert bad.status_code == 400


async def test_patch_renews_within_the_resource_limit(sim: Simulator,
                                                      client: httpx.AsyncClient) -> None:
    created = await _presence(client, sim)
    url = f"/v1.0/subscriptions/{created['id']}"
    renewal = {"expirationDateTime": subscription_body(sim, "x", minutes=55)["expirationDateTime"]}
    validator("types-strict/subscription.json").validate(renewal)
    renewed = await client.patch(url, json=renewal, headers=svc_headers(sim))
    assert renewed.status_code == 200
    assert renewed.json()["expirationDateTime"] == renewal["expirationDateTime"]
    validator("types/subscription.json").validate(renewed.json())
    too_far = {"expirationDateTime": subscription_body(sim, "x", minutes=61)["expirationDateTime"]}
    refused = await client.patch(url, json=too_far, headers=svc_headers(sim))
    assert refused.status_code == 400
    assert "60 minutes" in refused.json()["error"]["message"]
    empty = await client.patch(url, json={}, headers=svc_headers(sim))
    assert empty.status_code == 400
    assert "'expirationDateTime' or 'notificationUrl'" in empty.json()["error"]["message"]
    add_lifecycle = await client.patch(url, json={"lifecycleNotificationUrl": "https://x.test/l"},
                                       headers=svc_headers(sim))
    assert add_lifecycle.status_code == 400
    resource = await client.patch(url, json={"resource": "users"}, headers=svc_headers(sim))
    assert resource.status_code == 400
    current = await client.get(url, headers=svc_headers(sim))
    assert current.json()["expirationDateTime"] == renewal["expirationDateTime"]


async def test_patching_the_url_validates_the_new_endpoint_first(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    created = await _presence(client, sim)
    url = f"/v1.0/subscriptions/{created['id']}"
    receiver.validation_mode = "status"
    failed = await client.patch(url, json={"notificationUrl": "https://new.contoso.test/hook"},
                                headers=svc_headers(sim))
    assert failed.status_code == 400
    assert (await client.get(url, headers=svc_headers(sim))).json()["notificationUrl"] == (
        created["notificationUrl"])
    receiver.validation_mode = "echo"
    moved = await client.patch(url, json={"notificationUrl": "https://new.contoso.test/hook"},
                               headers=svc_headers(sim))
    assert moved.status_code == 200
    assert moved.json()["notificationUrl"] == "https://new.contoso.test/hook"
    assert receiver.validations[-1]["url"].startswith("https://new.contoso.test/hook?")


async def test_delete_then_gone(sim: Simulator, client: httpx.AsyncClient) -> None:
    created = await _presence(client, sim)
    url = f"/v1.0/subscriptions/{created['id']}"
    other_user = bearer(user_token(sim, "anna@contoso.com"))
    assert (await client.delete(url, headers=other_user)).status_code == 404
    deleted = await client.delete(url, headers=svc_headers(sim))
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await client.get(url, headers=svc_headers(sim))).status_code == 404
    assert (await client.delete(url, headers=svc_headers(sim))).status_code == 404
    # The one-per-user rule no longer blocks a new one.
    await _presence(client, sim)


async def test_expired_subscription_is_gone_and_delivers_nothing(
    sim: Simulator, clock: VirtualClock, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    created = await _presence(client, sim, minutes=10)
    url = f"/v1.0/subscriptions/{created['id']}"
    await clock.advance(600)
    assert (await client.get(url, headers=svc_headers(sim))).status_code == 404
    renewal = {"expirationDateTime": subscription_body(sim, "x", minutes=30)["expirationDateTime"]}
    assert (await client.patch(url, json=renewal, headers=svc_headers(sim))).status_code == 404
    sim.bus.publish(presence_change(user_id(sim, "anna@contoso.com")))
    await settle()
    assert receiver.posts == []
    assert created["id"] not in sim.subscriptions.subscriptions
    await _presence(client, sim)


async def test_reauthorize_answers_204_for_the_owner_only(sim: Simulator,
                                                         client: httpx.AsyncClient) -> None:
    created = await _presence(client, sim)
    url = f"/v1.0/subscriptions/{created['id']}/reauthorize"
    assert (await client.post(url, headers=svc_headers(sim))).status_code == 204
    other = bearer(user_token(sim, "anna@contoso.com"))
    assert (await client.post(url, headers=other)).status_code == 404
    unknown = await client.post("/v1.0/subscriptions/nope/reauthorize", headers=svc_headers(sim))
    assert unknown.status_code == 404
