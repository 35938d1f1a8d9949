"""Publications (RFC 3903) and subscriptions (RFC 6665) against a scripted server."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.sip.fields import parse_name_addr
from m365pbx.pbx.sip.message import SipRequest, SipResponse, response_for
from m365pbx.pbx.sip.outcome import OutcomeKind, refresh_delay
from m365pbx.pbx.sip.pidf import pidf_document
from m365pbx.pbx.sip.publication import Mode, Publication
from m365pbx.pbx.sip.retry import Backoff, parse_retry_after
from m365pbx.pbx.sip.subscription import DialogKey, Subscription, termination_action
from m365pbx.pbx.sip.transactions import Timers
from m365pbx.pbx.sip.useragent import UaConfig, UserAgent
from tests.pbx.sip.fakeserver import FakeServer, answer, start_fake_server

FAST = Timers(t1=0.02, t2=0.08, t4=0.1)
BOB = "sip:bob@example.com"
DND = pidf_document(BOB, PbxPresence.DND)
AWAY = pidf_document(BOB, PbxPresence.AWAY)


class PresenceServer:
    """Keeps ETags like Kamailio does: a new ETag on every 2xx, 412 for unknown ones."""

    def __init__(self) -> None:
        self.etags: set[str] = set()
        self.counter = itertools.count(1)
        self.script: list[tuple[int, dict[str, str]] | None] = []

    def __call__(self, request: SipRequest) -> SipResponse | None:
        if self.script:
            step = self.script.pop(0)
            return None if step is None else answer(request, step[0], "Scripted", **step[1])
        match = request.headers.get("sip-if-match")
        if match is not None and match not in self.etags:
            return answer(request, 412, "Conditional Request Failed")
        if match is None and not request.body:
            return answer(request, 400, "Invalid request")
        self.etags.discard(match or "")
        etag = f"e{next(self.counter)}"
        expires = request.headers.get("expires") or "3600"
        if expires != "0":
            self.etags.add(etag)
        return answer(request, 200, SIP_ETag=etag, Expires=expires)


def scripted(status: int, **headers: str) -> tuple[int, dict[str, str]]:
    return status, headers


async def setup(responder: object) -> tuple[FakeServer, UserAgent]:
    server = await start_fake_server(responder)  # type: ignore[arg-type]
    ua = UserAgent(UaConfig(server=server.address, timers=FAST))
    await ua.start()
    return server, ua


async def test_publication_lifecycle_keeps_one_etag() -> None:
    presence = PresenceServer()
    server, ua = await setup(presence)
    try:
        publication = Publication(ua, BOB, "sip:gw@example.com", expires=120)
        publication.desired = DND
        outcome = await publication.sync()
        assert outcome.ok and outcome.refresh_in == 120
        first = server.requests[-1]
        assert first.body == DND and first.headers.get("sip-if-match") is None
        assert first.headers.get("event") == "presence"
        assert first.headers.get("content-type") == "application/pidf+xml"
        assert publication.etag == "e1"

        assert (await publication.sync()).ok and len(server.requests) == 1  # nothing to do

        assert (await publication.sync(Mode.REFRESH)).ok
        refresh = server.requests[-1]
        assert refresh.headers.get("sip-if-match") == "e1" and refresh.body == b""
        assert refresh.headers.get("content-type") is None
        assert publication.etag == "e2"  # Kamailio changes the ETag on every refresh

        publication.desired = AWAY
        assert (await publication.sync()).ok
        modify = server.requests[-1]
        assert modify.headers.get("sip-if-match") == "e2" and modify.body == AWAY

        assert (await publication.sync(Mode.REASSERT)).ok
        assert server.requests[-1].body == AWAY and server.requests[-1].headers.get("sip-if-match")

        publication.desired = None
        assert (await publication.sync()).ok
        remove = server.requests[-1]
        assert remove.headers.get("expires") == "0" and remove.headers.get("sip-if-match") == "e4"
        assert not publication.active and presence.etags == set()
        cseqs = [int((r.headers.get("cseq") or "").split()[0]) for r in server.requests]
        assert cseqs == sorted(cseqs) and len(set(r.call_id for r in server.requests)) == 1
    finally:
        await ua.close()
        server.close()


async def test_412_publishes_afresh_with_the_full_body() -> None:
    presence = PresenceServer()
    server, ua = await setup(presence)
    try:
        publication = Publication(ua, BOB, "sip:gw@example.com")
        publication.desired = DND
        await publication.sync()
        presence.etags.clear()  # the server crashed and forgot
        assert (await publication.sync(Mode.REFRESH)).ok
        stale, fresh = server.requests[-2:]
        assert stale.headers.get("sip-if-match") == "e1"
        assert fresh.headers.get("sip-if-match") is None and fresh.body == DND
        presence.etags.clear()
        publication.desired = None
        assert (await publication.sync()).ok and not publication.active  # 412 on remove is fine
    finally:
        await ua.close()
        server.close()


async def test_423_retries_with_min_expires_and_failures_are_classified() -> None:
    presence = PresenceServer()
    server, ua = await setup(presence)
    try:
        publication = Publication(ua, BOB, "sip:gw@example.com", expires=10)
        publication.desired = DND
        presence.script = [scripted(423, Min_Expires="60")]
        assert (await publication.sync()).ok
        assert server.requests[-1].headers.get("expires") == "60" and publication.expires == 60

        publication.desired = AWAY
        presence.script = [scripted(503, Retry_After="7")]
        outcome = await publication.sync()
        assert outcome.kind is OutcomeKind.RETRY and outcome.retry_after == 7.0
        assert "503" in outcome.detail and publication.etag is not None

        presence.script = [scripted(489)]
        outcome = await publication.sync()
        assert outcome.kind is OutcomeKind.FAILED and "does not serve" in outcome.detail

        presence.script = [scripted(403)]
        assert (await publication.sync()).kind is OutcomeKind.BAD_CREDENTIALS

        presence.script = [scripted(200)]  # a 2xx without SIP-ETag
        outcome = await publication.sync()
        assert outcome.kind is OutcomeKind.RETRY and "SIP-ETag" in outcome.detail

        presence.script = [None] * 100
        outcome = await publication.sync()
        assert outcome.kind is OutcomeKind.RETRY and "no answer" in outcome.detail
    finally:
        await ua.close()
        server.close()


class Listener:
    def __init__(self) -> None:
        self.bodies: list[tuple[str, bytes]] = []
        self.ended: list[tuple[str, float | None]] = []
        self.bad: list[str] = []

    def notified(self, subscription: Subscription, content_type: str, body: bytes) -> bool:
        self.bodies.append((content_type, body))
        return body != b"<bad/>"

    def terminated(
        self, subscription: Subscription, reason: str, retry_after: float | None
    ) -> None:
        self.ended.append((reason, retry_after))

    def bad_notify(self, reason: str, detail: str) -> None:
        self.bad.append(reason)


def notify_for(
    subscribe: SipRequest,
    cseq: int,
    state: str,
    body: str = "",
    event: str = "dialog",
    branch: str = "",
) -> bytes:
    sender = parse_name_addr(subscribe.headers.get("from") or "")
    lines = [
        "NOTIFY sip:m365pbx@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKn{branch or cseq}",
        "From: <sip:bob@example.com>;tag=notifier",
        f"To: <{sender.uri}>;tag={sender.tag}",
        f"Call-ID: {subscribe.call_id}",
        f"CSeq: {cseq} NOTIFY",
        f"Event: {event}",
        "Contact: <sip:presence@127.0.0.1:9>",
        f"Subscription-State: {state}",
    ]
    if body:
        lines.append("Content-Type: application/dialog-info+xml")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


async def subscription_setup(
    responder: object,
) -> tuple[FakeServer, UserAgent, Subscription, Listener, dict[DialogKey, Subscription]]:
    server, ua = await setup(responder)
    registry: dict[DialogKey, Subscription] = {}

    def route(request: SipRequest) -> SipResponse:
        tag = parse_name_addr(request.headers.get("to") or "").tag or ""
        found = registry.get((request.call_id, tag))
        return found.handle_notify(request) if found else response_for(request, 481)

    ua.notify_handler = route
    listener = Listener()
    subscription = Subscription(
        ua,
        BOB,
        "sip:gw@example.com",
        "dialog",
        "application/dialog-info+xml",
        listener,
        registry,
        expires=600,
    )
    return server, ua, subscription, listener, registry


async def test_notify_before_200_then_refresh_in_dialog_and_481_restart() -> None:
    def respond(request: SipRequest) -> list[SipResponse]:
        if request.headers.get("expires") == "0":
            return [answer(request, 200, Expires="0")]
        if ";tag=" in (request.headers.get("to") or "") and state["lose"]:
            return [answer(request, 481)]
        # The first NOTIFY goes out before the 200 (seen with Kamailio).
        server.send(notify_for(request, state["cseq"], "active;expires=600", "<x/>"))
        state["cseq"] += 1
        response = answer(request, 200, Expires="600", Record_Route="<sip:proxy.example.com;lr>")
        response.headers.set("To", f"{request.headers.get('to')};tag=notifier")
        return [response]

    state = {"cseq": 1, "lose": False}
    server, ua, subscription, listener, registry = await subscription_setup(respond)
    try:
        outcome = await subscription.subscribe()
        assert outcome.ok and outcome.refresh_in == 600
        await server.wait_for(lambda: len(listener.bodies) == 1)
        assert subscription.leg.remote_tag == "notifier"
        first_call = subscription.leg.call_id

        assert (await subscription.subscribe()).ok
        refresh = server.requests[-1]
        assert refresh.call_id == first_call and ";tag=notifier" in (
            refresh.headers.get("to") or ""
        )
        assert refresh.uri == "sip:presence@127.0.0.1:9"  # the remote target from Contact
        assert refresh.headers.get_all("route") == ["<sip:proxy.example.com;lr>"]

        state["lose"] = True
        outcome = await subscription.subscribe()
        assert (server.requests[-2].headers.get("to") or "").endswith(";tag=notifier")
        assert outcome.ok
        restarted = server.requests[-1]
        assert restarted.call_id != first_call and ";tag=" not in (
            restarted.headers.get("to") or ""
        )
        assert (first_call, subscription.leg.local_tag) not in registry

        state["lose"] = False
        assert (await subscription.unsubscribe()).ok
        assert server.requests[-1].headers.get("expires") == "0"
        assert registry == {}
    finally:
        await ua.close()
        server.close()


async def test_notify_states_ordering_and_bad_notifies() -> None:
    server, ua, subscription, listener, _ = await subscription_setup(
        lambda r: answer(r, 200, Expires="600")
    )
    try:
        assert (await subscription.subscribe()).ok
        subscribe = server.requests[-1]
        server.send(notify_for(subscribe, 5, "active;expires=300", "<a/>"))
        await server.wait_for(lambda: len(server.responses) == 1)
        assert server.responses[-1].status == 200 and subscription.granted == 300

        server.send(notify_for(subscribe, 50, "active", "<bad/>"))  # refused by the listener
        await server.wait_for(lambda: len(server.responses) == 2)
        assert server.responses[-1].status == 200 and subscription.remote_cseq == 5
        server.send(notify_for(subscribe, 51, "sleeping", "<a/>"))
        await server.wait_for(lambda: len(server.responses) == 3)
        assert server.responses[-1].status == 400
        del server.responses[1:]

        server.send(notify_for(subscribe, 4, "active", "<old/>"))  # older CSeq
        await server.wait_for(lambda: len(server.responses) == 2)
        assert server.responses[-1].status == 500

        server.send(notify_for(subscribe, 6, "active", "<b/>", event="presence"))
        await server.wait_for(lambda: len(server.responses) == 3)
        assert server.responses[-1].status == 489 and listener.bad == [
            "bad-header",
            "unknown-event",
        ]

        no_state = notify_for(subscribe, 7, "x").replace(b"Subscription-State: x\r\n", b"")
        server.send(no_state)
        await server.wait_for(lambda: len(server.responses) == 4)
        assert server.responses[-1].status == 400

        server.send(notify_for(subscribe, 8, "terminated;reason=probation;retry-after=9"))
        await server.wait_for(lambda: len(server.responses) == 5)
        assert server.responses[-1].status == 200
        assert listener.ended == [("probation", 9.0)]
        assert [body for _, body in listener.bodies] == [b"<a/>", b"<bad/>"]

        server.send(notify_for(subscribe, 9, "active", "<late/>"))
        await server.wait_for(lambda: len(server.responses) == 6)
        assert server.responses[-1].status == 481  # the dialog is gone
    finally:
        await ua.close()
        server.close()


async def test_subscribe_423_and_initial_failures() -> None:
    calls = {"n": 0}

    def respond(request: SipRequest) -> SipResponse:
        calls["n"] += 1
        if calls["n"] == 1:
            return answer(request, 423, Min_Expires="1200")
        if calls["n"] == 2:
            return answer(request, 200, Expires="1200")
        return answer(request, 489)

    server, ua, subscription, _, _ = await subscription_setup(respond)
    try:
        assert (await subscription.subscribe()).refresh_in == 1200
        assert server.requests[-1].headers.get("expires") == "1200"
        subscription.restart()
        outcome = await subscription.subscribe()
        assert outcome.kind is OutcomeKind.FAILED
    finally:
        await ua.close()
        server.close()


def test_retry_helpers() -> None:
    backoff = Backoff(initial=1, maximum=30)
    delays = [backoff.delay(attempt) for attempt in range(10)]
    assert all(0.5 <= d <= 30 for d in delays) and max(delays) <= 30
    assert backoff.delay(0, retry_after=20) >= 20
    assert parse_retry_after("120 (busy);duration=60") == 120
    assert parse_retry_after("soon") is None
    assert refresh_delay(3600, 30) == 2880
    assert refresh_delay(60, 30) == 30
    assert refresh_delay(10, 30) == 1
    assert termination_action("rejected") is OutcomeKind.FAILED
    assert termination_action("deactivated") is OutcomeKind.RETRY


async def test_backoff_is_jittered() -> None:
    values = {round(Backoff().delay(3), 6) for _ in range(20)}
    assert len(values) > 1
    await asyncio.sleep(0)


@pytest.mark.parametrize("reason", ["noresource", "rejected", "invariant"])
def test_final_termination_reasons(reason: str) -> None:
    assert termination_action(reason) is OutcomeKind.FAILED
