"""Notifications for changes the other parts make: Teams presence, setPresence, meetings."""

from __future__ import annotations

import httpx
import pytest

from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID, TENANT_ID, app_token, bearer
from tests.sim.schemas import validator
from tests.sim.subscriptions.conftest import subscription_body, svc_headers, user_id
from tests.sim.subscriptions.helpers import EncryptionKey, Receiver, eventually
from tests.sim.subscriptions.test_rich import decrypt, verify_token

pytestmark = pytest.mark.usefixtures("running")


async def _rich_presence(client: httpx.AsyncClient, sim: Simulator, key: EncryptionKey,
                         user: str) -> None:
    body = subscription_body(sim, f"communications/presences/{user}", includeResourceData=True,
                             encryptionCertificate=key.certificate_b64,
                             encryptionCertificateId="e2e")
    response = await client.post("/v1.0/subscriptions", json=body, headers=svc_headers(sim))
    assert response.status_code == 201, response.text


async def test_a_click_in_teams_reaches_the_subscriber_as_the_aggregated_presence(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver,
    encryption_key: EncryptionKey,
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    await _rich_presence(client, sim, encryption_key, anna)
    acted = await client.post(f"/_sim/tenants/contoso.com/users/{anna}/teams",
                              json={"availability": "DoNotDisturb", "activity": "Presenting"})
    assert acted.status_code == 200, acted.text
    await eventually(lambda: len(receiver.changes()) >= 1)
    item = receiver.changes()[-1]
    validator("types/changeNotificationCollection.json").validate(receiver.posts[-1]["body"])
    presence = decrypt(item["encryptedContent"], encryption_key)
    validator("types/presence.json").validate(presence)
    graph = await client.get(f"/v1.0/users/{anna}/presence", headers=svc_headers(sim))
    assert graph.status_code == 200
    assert (presence["availability"], presence["activity"]) == (
        graph.json()["availability"], graph.json()["activity"]) == ("DoNotDisturb", "Presenting")
    assert presence["id"] == anna == item["resourceData"]["id"]
    verify_token(sim, receiver.posts[-1]["body"]["validationTokens"][0], APP_ID, TENANT_ID)


async def test_set_presence_by_an_app_is_notified(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver,
    encryption_key: EncryptionKey,
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    await client.post(f"/_sim/tenants/contoso.com/users/{anna}/teams",
                      json={"availability": "Available", "activity": "Available"})
    await _rich_presence(client, sim, encryption_key, anna)
    answer = await client.post(
        f"/v1.0/users/{anna}/presence/setPresence", headers=bearer(app_token(sim)),
        json={"sessionId": APP_ID, "availability": "Busy", "activity": "InACall",
              "expirationDuration": "PT1H"})
    assert answer.status_code == 200, answer.text
    await eventually(lambda: any(
        decrypt(i["encryptedContent"], encryption_key)["activity"] == "InACall"
        for i in receiver.changes()))


async def test_a_meeting_created_in_outlook_is_notified(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver,
    encryption_key: EncryptionKey,
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    body = subscription_body(sim, f"users/{anna}/events", changeType="created,deleted",
                             includeResourceData=True,
                             encryptionCertificate=encryption_key.certificate_b64,
                             encryptionCertificateId="e2e")
    created = await client.post("/v1.0/subscriptions", json=body,
                                headers=bearer(app_token(sim, ["Calendars.Read"])))
    assert created.status_code == 201, created.text
    meeting = await client.post(f"/_sim/tenants/contoso.com/users/{anna}/events",
                                json={"subject": "Budget", "start_in": "1h", "duration": "30m"})
    assert meeting.status_code == 201, meeting.text
    await eventually(lambda: len(receiver.changes()) == 1)
    item = receiver.changes()[0]
    assert item["changeType"] == "created"
    assert item["resource"] == f"users/{anna}/events/{meeting.json()['id']}"
    event = decrypt(item["encryptedContent"], encryption_key)
    assert event["subject"] == "Budget" and event["id"] == meeting.json()["id"]
    validator("types/event.json").validate(event)
