"""SipConnection's states, retries and re-subscriptions against a scripted server."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from m365pbx.core.presence import LineState, PbxPresence
from m365pbx.pbx.base import ConnectionState, LineStateEvent, PbxUser
from m365pbx.pbx.sip import Addressing, Backoff, SipConnection, SipOptions, Timers
from m365pbx.pbx.sip.fields import parse_name_addr
from m365pbx.pbx.sip.message import SipRequest, SipResponse
from m365pbx.pbx.sip.watching import EventQueue
from tests.pbx.sip.fakeserver import FakeServer, answer, start_fake_server
from tests.pbx.sip.helpers import wait_until

BOB = PbxUser("bob", {"extension": "200"})
FAST = dict(
    keepalive_interval=0.05,
    keepalive_timeout=0.3,
    timers=Timers(t1=0.02, t2=0.08, t4=0.1),
    backoff=Backoff(initial=0.05, maximum=0.2),
)


class Script:
    """Answers OPTIONS with 200, PUBLISH and SUBSCRIBE as the test says."""

    def __init__(self) -> None:
        self.publish: Callable[[SipRequest], SipResponse | None] = self.ok_publish
        self.subscribe: Callable[[SipRequest], SipResponse | None] = self.ok_subscribe
        self.etags = itertools.count(1)
        self.server: FakeServer | None = None

    def __call__(self, request: SipRequest) -> SipResponse | None:
        if request.method == "OPTIONS":
            return answer(request, 200)
        if request.method == "PUBLISH":
            return self.publish(request)
        return self.subscribe(request)

    def ok_publish(self, request: SipRequest) -> SipResponse:
        return answer(request, 200, SIP_ETag=f"e{next(self.etags)}", Expires="3600")

    def ok_subscribe(self, request: SipRequest) -> SipResponse:
        return answer(request, 200, Expires="600")


async def setup(script: Script, **overrides: object) -> tuple[FakeServer, SipConnection]:
    server = await start_fake_server(script)
    script.server = server
    options = SipOptions(server=server.address, addressing=Addressing("example.com"))
    options = replace(options, **{**FAST, **overrides})
    connection = SipConnection("unit", options)
    return server, connection


def notify(subscribe: SipRequest, cseq: int, state: str, body: bytes = b"") -> bytes:
    sender = parse_name_addr(subscribe.headers.get("from") or "")
    head = (
        "NOTIFY sip:m365pbx@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{subscribe.call_id[:8]}{cseq}\r\n"
        "From: <sip:200@example.com>;tag=server\r\n"
        f"To: <{sender.uri}>;tag={sender.tag}\r\n"
        f"Call-ID: {subscribe.call_id}\r\nCSeq: {cseq} NOTIFY\r\nEvent: dialog\r\n"
        f"Subscription-State: {state}\r\n"
        "Content-Type: application/dialog-info+xml\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def test_states_from_starting_to_stopped() -> None:
    server, connection = await setup(Script())
    try:
        assert connection.status().state is ConnectionState.STOPPED
        await connection.start()
        assert connection.status().state is ConnectionState.STARTING
        await wait_until(lambda: connection.status().state is ConnectionState.CONNECTED)
        await connection.set_presence(BOB, PbxPresence.DND, "")
        publish = server.of("PUBLISH")[-1]
        assert publish.uri == "sip:200@example.com"
        assert (publish.headers.get("from") or "").startswith("<sip:200@example.com>")
        assert connection.status().last_error is None
    finally:
        await connection.stop()
        server.close()
    assert connection.status().state is ConnectionState.STOPPED
    assert server.of("PUBLISH")[-1].headers.get("expires") == "0"


@pytest.mark.parametrize(
    ("status", "headers", "state", "words"),
    [
        (489, {}, ConnectionState.ERROR, "does not serve"),
        (404, {}, ConnectionState.ERROR, "404"),
        (403, {}, ConnectionState.BAD_CREDENTIALS, "not allowed"),
        (503, {"Retry_After": "60"}, ConnectionState.DEGRADED, "503"),
    ],
)
async def test_failures_show_in_the_state(
    status: int, headers: dict[str, str], state: ConnectionState, words: str
) -> None:
    script = Script()
    script.publish = lambda request: answer(request, status, "Refused", **headers)
    server, connection = await setup(script)
    await connection.start()
    try:
        await wait_until(lambda: connection.status().state is ConnectionState.CONNECTED)
        await connection.set_presence(BOB, PbxPresence.AWAY, "")
        current = connection.status()
        assert current.state is state
        assert current.last_error is not None and words in current.last_error
        assert "sip:200@example.com" in current.last_error
    finally:
        await connection.stop()
        server.close()


async def test_transient_failures_retry_with_backoff_until_they_pass() -> None:
    script = Script()
    failures = iter([503, 500, 408])

    def flaky(request: SipRequest) -> SipResponse:
        code = next(failures, None)
        return answer(request, code, "Busy") if code else script.ok_publish(request)

    script.publish = flaky
    # Keep-alives far apart: each also refreshes a publication (the canary that notices a
    # restarted server), which would add a PUBLISH to the four this test counts.
    server, connection = await setup(script, keepalive_interval=30.0)
    await connection.start()
    try:
        await wait_until(lambda: connection.status().state is ConnectionState.CONNECTED)
        await connection.set_presence(BOB, PbxPresence.BUSY, "")
        assert connection.status().state is ConnectionState.DEGRADED
        await wait_until(lambda: connection.status().state is ConnectionState.CONNECTED)
        assert len(server.of("PUBLISH")) == 4
        assert all(r.body == server.of("PUBLISH")[0].body for r in server.of("PUBLISH"))
    finally:
        await connection.stop()
        server.close()


async def test_an_unresolvable_server_is_degraded_not_a_crash() -> None:
    options = replace(
        SipOptions(server=("no-such-host.invalid", 5060), addressing=Addressing("example.com")),
        **FAST,
    )
    connection = SipConnection("nowhere", options)
    await connection.start()
    try:
        await wait_until(lambda: connection.status().state is ConnectionState.DEGRADED)
        assert "no-such-host.invalid" in (connection.status().last_error or "")
        await connection.set_presence(BOB, PbxPresence.DND, "")  # kept, not raised
    finally:
        await connection.stop()


async def test_terminated_subscriptions_come_back_or_stop() -> None:
    script = Script()
    server, connection = await setup(script)
    await connection.start()
    try:
        await wait_until(lambda: connection.status().state is ConnectionState.CONNECTED)
        await connection.watch([BOB])
        first = server.of("SUBSCRIBE")[-1]
        server.send(notify(first, 1, "terminated;reason=deactivated"))

        def dialogs() -> list[str]:
            return list(dict.fromkeys(r.call_id for r in server.of("SUBSCRIBE")))

        await server.wait_for(lambda: len(dialogs()) == 2)  # a new subscription, at once
        second = next(r for r in server.of("SUBSCRIBE") if r.call_id == dialogs()[1])
        server.send(notify(second, 1, "terminated;reason=rejected"))
        await wait_until(lambda: connection.status().state is ConnectionState.ERROR)
        assert "rejected" in (connection.status().last_error or "")
        assert len(dialogs()) == 2
    finally:
        await connection.stop()
        server.close()


async def test_a_partial_notify_with_a_gap_asks_for_the_full_state() -> None:
    script = Script()
    server, connection = await setup(script)
    await connection.start()
    events = connection.events()
    try:
        await wait_until(lambda: connection.status().state is ConnectionState.CONNECTED)
        await connection.watch([BOB])
        subscribe = server.of("SUBSCRIBE")[-1]
        doc = (
            '<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="{}" state="{}" '
            'entity="sip:200@example.com"><dialog id="a"><state>{}</state></dialog></dialog-info>'
        )
        server.send(notify(subscribe, 1, "active", doc.format(1, "full", "early").encode()))
        event = await anext(events)
        assert isinstance(event, LineStateEvent) and event.state is LineState.RINGING
        server.send(notify(subscribe, 2, "active", doc.format(5, "partial", "confirmed").encode()))
        await server.wait_for(lambda: len(server.of("SUBSCRIBE")) == 2)
        refresh = server.of("SUBSCRIBE")[-1]
        assert refresh.call_id == subscribe.call_id  # a refresh brings the full state
    finally:
        await connection.stop()
        server.close()


async def test_a_changed_address_withdraws_the_old_publication() -> None:
    server, connection = await setup(Script())
    await connection.start()
    try:
        await wait_until(lambda: connection.status().state is ConnectionState.CONNECTED)
        await connection.set_presence(BOB, PbxPresence.DND, "")
        moved = PbxUser("bob", {"extension": "201"})
        await connection.set_presence(moved, PbxPresence.DND, "")
        await server.wait_for(
            lambda: any(
                r.uri == "sip:200@example.com" and r.headers.get("expires") == "0"
                for r in server.of("PUBLISH")
            )
        )
        assert server.of("PUBLISH")[-1].uri in ("sip:201@example.com", "sip:200@example.com")
        assert any(r.uri == "sip:201@example.com" and r.body for r in server.of("PUBLISH"))
    finally:
        await connection.stop()
        server.close()


async def test_the_event_queue_drops_the_oldest_when_full() -> None:
    queue = EventQueue(2)
    for state in (LineState.RINGING, LineState.ON_THE_PHONE, LineState.IDLE):
        queue.put(LineStateEvent("bob", state, datetime.now(UTC)))
    queue.close()
    seen = [event async for event in queue.events()]
    assert queue.dropped == 1
    assert [e.sequence for e in seen] == [2, 3]


async def test_stop_then_start_again() -> None:
    server, connection = await setup(Script())
    try:
        for round_ in range(2):
            await connection.start()
            await wait_until(lambda: connection.status().state is ConnectionState.CONNECTED)
            await connection.set_presence(BOB, PbxPresence.DND, f"round {round_}")
            await connection.stop()
            assert connection.status().state is ConnectionState.STOPPED
        bodies = [r.body for r in server.of("PUBLISH") if r.body]
        assert len(bodies) == 2 and b"round 1" in bodies[-1]
    finally:
        server.close()


async def test_stop_says_how_many_publications_it_could_not_withdraw_in_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    script = Script()

    def removals_unanswered(request: SipRequest) -> SipResponse | None:
        return None if request.headers.get("expires") == "0" else script.ok_publish(request)

    script.publish = removals_unanswered
    server, connection = await setup(script, stop_timeout=0.3)
    try:
        await connection.start()
        await wait_until(lambda: connection.status().state is ConnectionState.CONNECTED)
        people = [PbxUser(f"p{n}", {"extension": f"3{n:02}"}) for n in range(20)]
        for person in people:
            await connection.set_presence(person, PbxPresence.AWAY, "")
        await connection.stop()
        removals = [r for r in server.of("PUBLISH") if r.headers.get("expires") == "0"]
        # All were sent at once, not one after the other.
        assert len({r.headers.get("sip-if-match") for r in removals}) == 20
        assert "20 still held after 0.3 s" in caplog.text
        assert connection.status().state is ConnectionState.STOPPED
    finally:
        server.close()
