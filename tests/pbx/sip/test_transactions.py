"""Transactions (RFC 3261 §17) and the user agent's server side, against a scripted peer."""

from __future__ import annotations

import asyncio

import pytest

from m365pbx.pbx.sip.message import SipRequest, SipResponse, response_for
from m365pbx.pbx.sip.parser import parse_datagram
from m365pbx.pbx.sip.transactions import Timers, TransactionTimeout
from m365pbx.pbx.sip.useragent import Leg, UaConfig, UserAgent
from tests.pbx.sip.fakeserver import FakeServer, answer, start_fake_server

FAST = Timers(t1=0.02, t2=0.08, t4=0.1)


async def agent(server: FakeServer, timers: Timers = FAST) -> UserAgent:
    ua = UserAgent(UaConfig(server=server.address, timers=timers))
    await ua.start()
    return ua


def leg() -> Leg:
    return Leg("sip:gw@example.com", "sip:bob@example.com", "sip:bob@example.com")


async def test_timer_e_retransmits_until_the_final_response() -> None:
    def respond(request: SipRequest) -> SipResponse | None:
        return answer(request, 200) if len(server.requests) >= 4 else None

    server = await start_fake_server(respond)
    ua = await agent(server)
    try:
        response = await ua.send(leg(), "PUBLISH")
        assert response.status == 200
        branches = {r.headers.get("via") for r in server.requests}
        assert len(server.requests) == 4 and len(branches) == 1  # same transaction
    finally:
        await ua.close()
        server.close()


async def test_timer_f_ends_the_wait() -> None:
    server = await start_fake_server(lambda request: None)
    ua = await agent(server)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(TransactionTimeout):
            await ua.send(leg(), "PUBLISH")
        elapsed = asyncio.get_running_loop().time() - started
        assert 64 * FAST.t1 * 0.9 <= elapsed < 64 * FAST.t1 * 10
        # Intervals double from T1 and are capped at T2: 0.02, 0.04, 0.08, 0.08, ...
        assert 8 <= len(server.requests) <= 25
        with pytest.raises(TransactionTimeout):
            await ua.send(leg(), "OPTIONS", limit=0.1)
    finally:
        await ua.close()
        server.close()


async def test_provisional_response_keeps_waiting_at_t2() -> None:
    def respond(request: SipRequest) -> list[SipResponse]:
        if len(server.requests) == 1:
            return [answer(request, 100, "Trying")]
        return [answer(request, 202, "Accepted")] if len(server.requests) >= 3 else []

    server = await start_fake_server(respond)
    ua = await agent(server)
    try:
        assert (await ua.send(leg(), "SUBSCRIBE")).status == 202
    finally:
        await ua.close()
        server.close()


async def test_late_and_stray_responses_are_ignored() -> None:
    server = await start_fake_server(lambda request: [answer(request, 200), answer(request, 200)])
    ua = await agent(server)
    try:
        assert (await ua.send(leg(), "PUBLISH")).status == 200
        await server.wait_for(lambda: ua.stray_responses >= 1)
        assert ua.counter.total == 0
    finally:
        await ua.close()
        server.close()


NOTIFY = (
    "NOTIFY sip:m365pbx@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{branch}\r\n"
    "From: <sip:bob@example.com>;tag=srv\r\n"
    "To: <sip:gw@example.com>{to_tag}\r\n"
    "Call-ID: {call_id}\r\n"
    "CSeq: 5 {method}\r\n"
    "Event: presence\r\n"
    "Subscription-State: active;expires=60\r\n"
    "Content-Length: 0\r\n\r\n"
)


async def test_server_side_answers_once_and_repeats_the_answer_to_retransmissions() -> None:
    server = await start_fake_server()
    ua = await agent(server)
    calls: list[SipRequest] = []

    def handler(request: SipRequest) -> SipResponse:
        calls.append(request)
        return response_for(request, 200)

    ua.notify_handler = handler
    try:
        client = ("127.0.0.1", ua.transport.local[1])
        notify = NOTIFY.format(branch="n1", to_tag=";tag=t", call_id="c1", method="NOTIFY")
        for _ in range(3):
            server.send(notify.encode(), client)
        await server.wait_for(lambda: len(server.responses) >= 3)
        assert len(calls) == 1
        assert {r.status for r in server.responses} == {200}
    finally:
        await ua.close()
        server.close()


async def test_a_reused_branch_with_another_call_id_is_a_new_request() -> None:
    server = await start_fake_server()
    ua = await agent(server)
    calls: list[SipRequest] = []

    def handler(request: SipRequest) -> SipResponse:
        calls.append(request)
        return response_for(request, 200)

    ua.notify_handler = handler
    try:
        client = ("127.0.0.1", ua.transport.local[1])
        for call_id in ("c1", "c2"):
            text = NOTIFY.format(branch="same", to_tag=";tag=t", call_id=call_id, method="NOTIFY")
            server.send(text.encode(), client)
        await server.wait_for(lambda: len(server.responses) >= 2)
        assert [c.call_id for c in calls] == ["c1", "c2"]
    finally:
        await ua.close()
        server.close()


async def test_default_answers_481_options_405_and_to_tags() -> None:
    server = await start_fake_server()
    ua = await agent(server)
    try:
        client = ("127.0.0.1", ua.transport.local[1])
        for branch, method in (("a", "NOTIFY"), ("b", "OPTIONS"), ("c", "INVITE"), ("d", "ACK")):
            text = NOTIFY.format(branch=branch, to_tag="", call_id=branch, method=method)
            server.send(text.replace("NOTIFY sip:", f"{method} sip:", 1).encode(), client)
        await server.wait_for(lambda: len(server.responses) >= 3)
        await asyncio.sleep(0.05)
        by_call = {r.call_id: r for r in server.responses}
        assert set(by_call) == {"a", "b", "c"}  # ACK is never answered
        assert by_call["a"].status == 481
        assert by_call["b"].status == 200
        assert by_call["c"].status == 405 and "NOTIFY" in (by_call["c"].headers.get("allow") or "")
        assert all(";tag=" in (r.headers.get("to") or "") for r in server.responses)
    finally:
        await ua.close()
        server.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x02\x00\x01\x00",  # a TLS hello on the SIP port
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        NOTIFY.format(branch="x", to_tag="", call_id="x", method="NOTIFY")
        .replace("Event: presence", "Event: presence" + f"\r\nX-Pad: {'p' * 3000}" * 6)
        .encode(),  # a header section beyond 16 KiB
        NOTIFY.format(branch="x", to_tag="", call_id="x", method="NOTIFY")
        .replace("Content-Length: 0", "Content-Length: 99")
        .encode(),
        NOTIFY.format(branch="x", to_tag="", call_id="x", method="NOTIFY")
        .replace("Event: presence", "Event: " + "p" * 9000)
        .encode(),
        NOTIFY.format(branch="x", to_tag="", call_id="x", method="NOTIFY")
        .replace("Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx", "Via: SIP/2.0/UDP 127.0.0.1:9")
        .encode(),
    ],
)
async def test_bad_datagrams_are_counted_and_change_nothing(garbage: bytes) -> None:
    server = await start_fake_server()
    ua = await agent(server)
    try:
        client = ("127.0.0.1", ua.transport.local[1])
        server.send(garbage, client)
        await asyncio.sleep(0.05)
        assert ua.counter.total == 1
        assert server.responses == []
        assert (await ua.send(leg(), "PUBLISH")).status == 200  # still working
    finally:
        await ua.close()
        server.close()


async def test_responses_parse_back() -> None:
    request = parse_datagram(
        NOTIFY.format(branch="q", to_tag="", call_id="q", method="NOTIFY").encode()
    )
    assert isinstance(request, SipRequest)
    response = parse_datagram(response_for(request, 489).to_bytes())
    assert isinstance(response, SipResponse) and response.reason == "Bad Event"
