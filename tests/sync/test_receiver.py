"""The webhook receiver on its own: notifications as m365sim signs and encrypts them, the
signing keys read from m365sim, the virtual clock (issue 18, items 2, 3 and 13)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest

from m365pbx.graph.certificates import NotificationCertificate
from m365pbx.graph.presence import PresenceReading
from m365pbx.graph.signing_keys import SigningKeys
from m365pbx.sync.teams_to_pbx.receiver import KnownSubscription, NotificationReceiver
from m365sim.clock import VirtualClock
from m365sim.simulator import Simulator
from m365sim.subscriptions.crypto import EncryptionCertificate, ValidationTokens, encrypt_content
from m365sim.tokens import SigningKey, TokenIssuer
from tests.sim.conftest import APP_ID, TENANT_ID

SECRET = "client-state-secret-4c1d"
SUBSCRIPTION = "7f105c7d-2dc5-4530-97cd-4e7ae6534c07"
ANNA = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
OTHER_TENANT = "84bd8158-6d4d-4958-8b9f-9d6445542f95"


@dataclass
class Seen:
    """What the receiver handed on."""

    presence: list[PresenceReading] = field(default_factory=list)
    basic: list[tuple[str, list[str]]] = field(default_factory=list)
    lifecycle: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Rig:
    """A receiver wired to m365sim's keys, one known subscription and recording handlers."""

    receiver: NotificationReceiver
    seen: Seen
    keys: SigningKeys
    certificate: NotificationCertificate
    sim: Simulator
    clock: VirtualClock

    def item(self, *, client_state: str | None = SECRET, subscription: str = SUBSCRIPTION,
              rich: bool = False, availability: str = "Busy") -> dict[str, Any]:
        """One presence change notification as Graph sends it."""
        item: dict[str, Any] = {
            "subscriptionId": subscription, "changeType": "updated", "tenantId": TENANT_ID,
            "resource": f"communications/presences/{ANNA}",
            "resourceData": {"@odata.type": "#microsoft.graph.presence",
                             "@odata.id": f"users/{ANNA}/presence", "id": ANNA},
        }
        if client_state is not None:
            item["clientState"] = client_state
        if rich:
            resource = {"@odata.type": "#microsoft.graph.presence", "id": ANNA,
                        "availability": availability, "activity": availability}
            item["encryptedContent"] = encrypt_content(
                resource, EncryptionCertificate.parse(self.certificate.base64_der),
                self.certificate.id)
        return item

    def tokens(self, *, tenant_id: str = TENANT_ID, issuer: TokenIssuer | None = None
               ) -> list[str]:
        """Validation tokens as Graph adds them to rich batches."""
        return [ValidationTokens(issuer or self.sim.issuer).token(APP_ID, tenant_id,
                                                                  self.clock.now())]


def body(*items: dict[str, Any], tokens: list[str] | None = None) -> bytes:
    """A POSTed notification collection."""
    data: dict[str, Any] = {"value": list(items)}
    if tokens is not None:
        data["validationTokens"] = tokens
    return json.dumps(data).encode()


@pytest.fixture
async def rig(sim: Simulator, clock: VirtualClock,
              client: httpx.AsyncClient) -> AsyncIterator[Rig]:
    """The receiver under test."""
    seen = Seen()
    known = KnownSubscription(SUBSCRIPTION, SECRET, TENANT_ID, APP_ID)
    certificate = NotificationCertificate.generate(now=clock.now())
    keys = SigningKeys(client, clock, login_host="https://sim.test")

    async def lifecycle(subscription: KnownSubscription, event: str) -> None:
        seen.lifecycle.append((subscription.id, event))

    receiver = NotificationReceiver(
        clock, {SUBSCRIPTION: known}.get, {certificate.id: certificate.private_key()}.get,
        keys.keys, seen.presence.extend, lambda k, ids: seen.basic.append((k.id, ids)),
        lifecycle, queue_size=10, decrypt_processes=1)
    yield Rig(receiver, seen, keys, certificate, sim, clock)
    await receiver.aclose()


async def test_a_rich_notification_is_decrypted_and_handed_on(rig: Rig) -> None:
    verdict = await rig.receiver.receive(body(rig.item(rich=True), tokens=rig.tokens()))
    assert verdict.status == 202 and verdict.accepted == 1
    await rig.receiver.drain()
    assert [(r.user_id, r.availability) for r in rig.seen.presence] == [(ANNA, "Busy")]
    assert rig.seen.basic == []
    assert rig.receiver.health()["refused_last_5_min"] == 0


async def test_a_basic_notification_asks_for_the_person_to_be_read_back(rig: Rig) -> None:
    verdict = await rig.receiver.receive(body(rig.item()))
    assert verdict.status == 202
    await rig.receiver.drain()
    assert rig.seen.basic == [(SUBSCRIPTION, [ANNA])]


async def test_a_forged_client_state_is_refused_and_nothing_of_the_batch_is_kept(
    rig: Rig,
) -> None:
    genuine = rig.item()
    for forged in (rig.item(client_state="guessed"), rig.item(client_state=None)):
        verdict = await rig.receiver.receive(body(genuine, forged))
        assert verdict.status == 403
        assert "client state does not match" in verdict.reason
    await rig.receiver.drain()
    assert rig.seen.basic == [] and rig.seen.presence == []
    assert rig.receiver.counters["forged"] == 2
    report = rig.receiver.health()
    assert report["refused_last_5_min"] == 2
    assert report["reasons"]["forged"]["status"] == 403


@pytest.mark.parametrize(("raw", "why"), [
    (b"", "not JSON"),
    (b"\xff\xfe{", "not JSON"),
    (b"[1, 2]", "'value' list"),
    (b'{"value": {}}', "'value' list"),
    (b'{"value": []}', "empty"),
    (b'{"value": ["text"]}', "value[0] must be an object"),
    (b'{"value": [{"changeType": "updated", "resource": "x"}]}', "subscriptionId"),
    (json.dumps({"value": [{"subscriptionId": SUBSCRIPTION, "clientState": 5,
                            "changeType": "updated", "resource": "x"}]}).encode(),
     "clientState must be a string"),
    (json.dumps({"value": [{"subscriptionId": SUBSCRIPTION, "clientState": SECRET,
                            "changeType": "updated", "resource": "x",
                            "resourceData": []}]}).encode(), "resourceData must be an object"),
    (json.dumps({"value": [{"subscriptionId": SUBSCRIPTION, "clientState": SECRET,
                            "changeType": "updated", "resource": "x"}],
                 "validationTokens": "abc"}).encode(), "validationTokens"),
    (json.dumps({"value": [{"subscriptionId": SUBSCRIPTION, "clientState": SECRET,
                            "changeType": "updated", "resource": "x",
                            "encryptedContent": {"data": "x"}}]}).encode(), "dataKey"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
], ids=["empty", "not-utf8", "list", "value-object", "value-empty", "item-text",
        "no-subscription", "client-state-number", "resource-data-list", "tokens-text",
        "encrypted-partial", "deep-nesting"])
async def test_malformed_bodies_are_refused_with_400_saying_why(rig: Rig, raw: bytes,
                                                                why: str) -> None:
    verdict = await rig.receiver.receive(raw)
    assert verdict.status == 400
    assert why in verdict.reason
    assert rig.receiver.counters["malformed"] == 1
    assert rig.receiver.health()["reasons"]["malformed"]["count"] == 1


async def test_an_oversized_body_is_refused_unread(rig: Rig) -> None:
    verdict = await rig.receiver.receive(b" " * (4 * 1024 * 1024 + 1))
    assert verdict.status == 400 and "larger than accepted" in verdict.reason


async def test_notifications_for_subscriptions_we_do_not_hold_are_ignored_and_counted(
    rig: Rig, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    stale = rig.item(subscription="0d0c4d4e-old-one", client_state="old secret")
    verdict = await rig.receiver.receive(body(stale, rig.item()))
    # 202: an error would only make Graph retry an old subscription's notifications.
    assert verdict.status == 202 and verdict.accepted == 1
    await rig.receiver.drain()
    assert rig.seen.basic == [(SUBSCRIPTION, [ANNA])]
    assert rig.receiver.counters["unknown_subscription"] == 1
    reasons = rig.receiver.health()["reasons"]
    assert "subscriptions we do not hold" in reasons["unknown_subscription"]["last_reason"]
    assert "old secret" not in caplog.text


@pytest.mark.parametrize("event", ["missed", "subscriptionRemoved", "reauthorizationRequired"])
async def test_lifecycle_events_reach_the_subscription_owner(rig: Rig, event: str) -> None:
    item = {"subscriptionId": SUBSCRIPTION, "clientState": SECRET, "tenantId": TENANT_ID,
            "subscriptionExpirationDateTime": "2026-01-05T09:00:00.0000000Z",
            "lifecycleEvent": event}
    verdict = await rig.receiver.receive(body(item))
    assert verdict.status == 202
    await rig.receiver.drain()
    assert rig.seen.lifecycle == [(SUBSCRIPTION, event)]
    assert rig.receiver.counters[f"lifecycle_{event}"] == 1
    forged = dict(item, clientState="guessed")
    assert (await rig.receiver.receive(body(forged))).status == 403
    await rig.receiver.drain()
    assert rig.seen.lifecycle == [(SUBSCRIPTION, event)]


async def test_a_rich_notification_without_validation_tokens_is_refused(rig: Rig) -> None:
    verdict = await rig.receiver.receive(body(rig.item(rich=True)))
    assert verdict.status == 403 and "without validationTokens" in verdict.reason


async def test_validation_tokens_of_another_tenant_are_refused_naming_both_tenants(
    rig: Rig,
) -> None:
    tokens = rig.tokens(tenant_id=OTHER_TENANT)
    verdict = await rig.receiver.receive(body(rig.item(rich=True), tokens=tokens))
    assert verdict.status == 403
    assert OTHER_TENANT in verdict.reason and TENANT_ID in verdict.reason
    await rig.receiver.drain()
    assert rig.seen.presence == []


async def test_tokens_signed_by_a_key_microsoft_does_not_publish_are_refused(
    rig: Rig,
) -> None:
    await rig.receiver.receive(body(rig.item(rich=True), tokens=rig.tokens()))
    assert rig.keys.fetches == 1
    impostor = TokenIssuer(SigningKey.generate(), issuer_base="https://sim.test")
    for _ in range(20):
        verdict = await rig.receiver.receive(body(rig.item(rich=True),
                                                  tokens=rig.tokens(issuer=impostor)))
        assert verdict.status == 403 and "unknown key" in verdict.reason
    # Made-up key ids cannot make us hammer Entra: at most one read per few minutes.
    assert rig.keys.fetches == 1
    await rig.clock.advance(301)
    await rig.receiver.receive(body(rig.item(rich=True), tokens=rig.tokens(issuer=impostor)))
    assert rig.keys.fetches == 2


async def test_after_microsoft_rotates_its_keys_rich_notifications_are_still_accepted(
    rig: Rig,
) -> None:
    assert (await rig.receiver.receive(body(rig.item(rich=True),
                                            tokens=rig.tokens()))).status == 202
    await rig.clock.advance(timedelta(days=3).total_seconds())
    rig.sim.issuer.rotate(retire_previous=True)
    verdict = await rig.receiver.receive(body(rig.item(rich=True, availability="Away"),
                                              tokens=rig.tokens()))
    assert verdict.status == 202, verdict.reason
    await rig.receiver.drain()
    assert [r.availability for r in rig.seen.presence] == ["Busy", "Away"]


async def test_when_the_keys_cannot_be_read_graph_is_asked_to_retry(
    sim: Simulator, clock: VirtualClock, rig: Rig,
) -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(unreachable)) as http:
        rig.receiver.signing_keys = SigningKeys(http, clock, login_host="https://sim.test").keys
        verdict = await rig.receiver.receive(body(rig.item(rich=True), tokens=rig.tokens()))
    assert verdict.status == 503
    assert "cannot reach Entra ID at sim.test for its signing keys" in verdict.reason
    assert rig.receiver.health()["reasons"]["signing_keys"]["count"] == 1


def for_person(item: dict[str, Any], user_id: str) -> dict[str, Any]:
    """The same notification about someone else (basic: ids only)."""
    item["resource"] = f"communications/presences/{user_id}"
    item["resourceData"] = {**item["resourceData"], "id": user_id,
                            "@odata.id": f"users/{user_id}/presence"}
    return item


async def test_what_does_not_fit_the_queue_is_answered_202_and_read_back(
    rig: Rig, caplog: pytest.LogCaptureFixture,
) -> None:
    # Graph retries a 503 with backoff and drops what keeps failing; a full queue must cost
    # a read back from Graph, not the change nor a late answer.
    caplog.set_level(logging.WARNING)
    items = [for_person(rig.item(), f"person-{n}") for n in range(10)]
    assert (await rig.receiver.receive(body(*items))).status == 202
    verdict = await rig.receiver.receive(body(for_person(rig.item(), "bob"),
                                              for_person(rig.item(), "carol")))
    assert verdict.status == 202 and verdict.accepted == 2
    assert rig.seen.basic == [(SUBSCRIPTION, ["bob", "carol"])]  # read back at once
    assert rig.receiver.health()["overflowed"] == 2
    assert rig.receiver.health()["queued"] == 10
    assert any("did not fit the queue of 10" in r.getMessage() and "read back" in r.getMessage()
               for r in caplog.records)
    await rig.receiver.drain()
    assert [ids for _, ids in rig.seen.basic[1:]] == [[f"person-{n}"] for n in range(10)]


async def test_a_queued_notification_older_than_a_read_back_is_not_handed_on(rig: Rig) -> None:
    older = rig.item(rich=True, availability="Busy")
    others = [for_person(rig.item(), f"person-{n}") for n in range(9)]
    tokens = rig.tokens()
    assert (await rig.receiver.receive(body(older, *others, tokens=tokens))).status == 202
    newer = rig.item(rich=True, availability="Away")
    assert (await rig.receiver.receive(body(newer, tokens=tokens))).status == 202
    assert rig.seen.basic == [(SUBSCRIPTION, [ANNA])]
    await rig.receiver.drain()
    # Anna's Busy would overwrite what the read back finds: it is skipped.
    assert rig.seen.presence == []
    assert rig.receiver.counters["superseded"] == 1


async def test_lifecycle_events_are_queued_even_when_the_queue_is_full(rig: Rig) -> None:
    items = [for_person(rig.item(), f"person-{n}") for n in range(10)]
    assert (await rig.receiver.receive(body(*items))).status == 202
    event = {"subscriptionId": SUBSCRIPTION, "clientState": SECRET, "tenantId": TENANT_ID,
             "lifecycleEvent": "missed"}
    assert (await rig.receiver.receive(body(event))).status == 202
    await rig.receiver.drain()
    assert rig.seen.lifecycle == [(SUBSCRIPTION, "missed")]


@pytest.mark.parametrize("where", ["thread", "one process", "two processes"])
async def test_many_rich_notifications_are_all_decrypted_in_order(rig: Rig, where: str) -> None:
    # 160: more than one worker takes in hand (SPILL_AT), so two share them.
    states = ["Busy", "Away", "Available", "DoNotDisturb"] * 40
    items = [rig.item(rich=True, availability=state) for state in states]
    rig.receiver.queue_size = 1000
    rig.receiver.process_at = 1000 if where == "thread" else 1
    rig.receiver.decrypt_processes = 2 if where == "two processes" else 1
    assert (await rig.receiver.receive(body(*items, tokens=rig.tokens()))).status == 202
    await rig.receiver.drain()
    assert [r.availability for r in rig.seen.presence] == states
    assert rig.receiver.counters["decrypted"] == 160
    assert rig.receiver.counters["decrypt_processes_failed"] == 0
    await rig.receiver.aclose()


async def test_when_the_decryption_worker_dies_a_thread_takes_over_and_says_so(
    rig: Rig, caplog: pytest.LogCaptureFixture,
) -> None:
    rig.receiver.process_at = 1  # every round to the worker process
    tokens = rig.tokens()
    await rig.receiver.receive(body(rig.item(rich=True, availability="Busy"), tokens=tokens))
    await rig.receiver.drain()
    assert [r.availability for r in rig.seen.presence] == ["Busy"]
    worker = rig.receiver._workers[0]
    worker.process.kill()
    await worker.process.wait()
    await rig.receiver.receive(body(rig.item(rich=True, availability="Away"), tokens=tokens))
    await rig.receiver.drain()
    # Decrypted in the thread, or (when the worker died with it in hand) read back: not lost.
    assert [r.availability for r in rig.seen.presence[1:]] == ["Away"] or (
        rig.seen.basic == [(SUBSCRIPTION, [ANNA])])
    assert rig.receiver.health()["decrypting"].startswith(
        "in a thread: the worker processes failed")
    assert "decrypting in worker processes failed" in caplog.text
    await rig.receiver.receive(body(rig.item(rich=True, availability="DoNotDisturb"),
                                    tokens=tokens))
    await rig.receiver.drain()
    assert rig.seen.presence[-1].availability == "DoNotDisturb"
    await rig.receiver.aclose()


async def test_content_for_a_certificate_we_no_longer_hold_is_read_back_instead(
    rig: Rig,
) -> None:
    item = rig.item(rich=True)
    item["encryptedContent"]["encryptionCertificateId"] = "m365pbx-retired"
    assert (await rig.receiver.receive(body(item, tokens=rig.tokens()))).status == 202
    await rig.receiver.drain()
    assert rig.seen.presence == [] and rig.seen.basic == [(SUBSCRIPTION, [ANNA])]
    assert rig.receiver.counters["unknown_certificate"] == 1


async def test_refusals_are_logged_once_a_minute_with_a_count_and_no_secrets(
    rig: Rig, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    forged = rig.item(client_state="forged-" + SECRET)
    for _ in range(50):
        await rig.receiver.receive(body(forged), source="203.0.113.9")
    lines = [r for r in caplog.records if "notification refused" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert "403 from 203.0.113.9: client state does not match" in lines[0].getMessage()
    await rig.clock.advance(61)
    await rig.receiver.receive(body(forged))
    texts = [r.getMessage() for r in caplog.records if "notification refused" in r.getMessage()]
    assert len(texts) == 2 and "49 more refused like this" in texts[1]
    assert SECRET not in caplog.text
    report = rig.receiver.health()
    assert report["refused_last_5_min"] == 51
    await rig.clock.advance(301)
    assert rig.receiver.health() == {
        "accepted": 0, "queued": 0, "overflowed": 0, "refused_last_5_min": 0, "reasons": {},
        "decrypting": "in 1 worker process(es)"}
