"""Digest accounts against Kamailio WITH_AUTH, and bad input on a live connection."""

from __future__ import annotations

import asyncio
import socket

from m365pbx.core.presence import LineState, PbxPresence
from m365pbx.pbx.base import ConnectionState, LineStateEvent, PbxUser
from m365pbx.pbx.sip import GatewayAccount, PersonalAccounts
from tests.pbx.sip.conftest import ACCOUNTS, GATEWAY_PASSWORD
from tests.pbx.sip.helpers import EventReader, Phone, RawWatcher, connect, wait_until
from tests.pbx.sip.kamailio import KamailioServer


async def test_gateway_account_publishes_for_everyone(kamailio_auth: KamailioServer) -> None:
    connection = await connect(kamailio_auth, accounts=GatewayAccount("gateway", GATEWAY_PASSWORD))
    watcher = await RawWatcher(
        kamailio_auth, "sip:nora@127.0.0.1", "dave", ACCOUNTS["dave"]
    ).start()
    try:
        await connection.set_presence(PbxUser("nora", {"extension": "nora"}), PbxPresence.DND, "")
        await wait_until(lambda: any(b"dnd" in body for body in watcher.bodies))
        assert connection.status().state is ConnectionState.CONNECTED
    finally:
        await watcher.close()
        await connection.stop()


async def test_personal_accounts_and_bad_credentials(kamailio_auth: KamailioServer) -> None:
    carol = PbxUser("carol", {"extension": "carol", "sip_password": ACCOUNTS["carol"]})
    wrong = PbxUser("dave", {"extension": "dave", "sip_password": "Wr0ng-Secret"})
    connection = await connect(kamailio_auth, accounts=PersonalAccounts())
    watcher = await RawWatcher(
        kamailio_auth, "sip:carol@127.0.0.1", "dave", ACCOUNTS["dave"]
    ).start()
    try:
        await connection.set_presence(carol, PbxPresence.AWAY, "")
        await wait_until(lambda: any(b"rpid:away" in body for body in watcher.bodies))
        assert connection.status().state is ConnectionState.CONNECTED
        await connection.set_presence(wrong, PbxPresence.BUSY, "")
        status = connection.status()
        assert status.state is ConnectionState.BAD_CREDENTIALS
        assert status.last_error is not None and "'dave'" in status.last_error
        assert "Wr0ng-Secret" not in status.last_error
        # The one with good credentials is not disturbed by the one with bad ones.
        await connection.set_presence(carol, PbxPresence.MEETING, "")
        await wait_until(lambda: any(b"rpid:meeting" in body for body in watcher.bodies))
        # Fixed credentials clear the state at the next change.
        await connection.set_presence(
            PbxUser("dave", {"extension": "dave", "sip_password": ACCOUNTS["dave"]}),
            PbxPresence.BUSY,
            "",
        )
        assert connection.status().state is ConnectionState.CONNECTED
    finally:
        await watcher.close()
        await connection.stop()


async def test_a_gateway_without_credentials_shows_bad_credentials(
    kamailio_auth: KamailioServer,
) -> None:
    connection = await connect(kamailio_auth)
    try:
        await connection.set_presence(PbxUser("olga", {"extension": "olga"}), PbxPresence.DND, "")
        status = connection.status()
        assert status.state is ConnectionState.BAD_CREDENTIALS
        assert status.last_error is not None and "asks for credentials" in status.last_error
    finally:
        await connection.stop()


def notify(
    call_id: str,
    to_tag: str,
    from_tag: str,
    cseq: int,
    event: str,
    body: bytes,
    content_type: str = "application/dialog-info+xml",
    length: int | None = None,
) -> bytes:
    head = (
        "NOTIFY sip:m365pbx@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKbad{cseq}\r\n"
        "From: <sip:paul@127.0.0.1>;tag=" + from_tag + "\r\n"
        "To: <sip:paul@127.0.0.1>;tag=" + to_tag + "\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} NOTIFY\r\nEvent: {event}\r\n"
        "Subscription-State: active;expires=600\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\n\r\n"
    )
    return head.encode() + body


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="99" state="full"
 entity="sip:paul@127.0.0.1"><dialog id="&d;"><state>confirmed</state></dialog></dialog-info>"""


async def test_bad_input_is_counted_and_disturbs_nothing(kamailio: KamailioServer) -> None:
    connection = await connect(kamailio)
    reader = EventReader(connection)
    phone = await Phone(kamailio, "paul").start()
    try:
        await connection.watch([PbxUser("paul", {"extension": "paul"})])
        await reader.wait_for(lambda e: isinstance(e, LineStateEvent))
        subscription = connection._people["paul"].subscriptions["dialog"]
        await wait_until(lambda: subscription.leg.remote_tag is not None)
        call_id, ours, theirs = (
            subscription.leg.call_id,
            subscription.leg.local_tag,
            subscription.leg.remote_tag or "",
        )
        cseq = (subscription.remote_cseq or 1) + 100
        bad = [
            b"\x00\xff garbage",
            b"OPTIONS sip:x SIP/2.0\r\n\r\n",  # no mandatory headers
            notify(call_id, ours, theirs, cseq, "dialog", b"<x/>" * 5, length=9999),
            notify(call_id, ours, theirs, cseq, "dialog", b"x").replace(
                b"Event: dialog", b"Event: dialog\r\nX-Pad: " + b"p" * 20_000
            ),
            notify(call_id, ours, theirs, cseq + 1, "message-summary", b""),
            notify(call_id, ours, theirs, cseq + 2, "dialog", b"this is not xml"),
            notify(call_id, ours, theirs, cseq + 3, "dialog", BOMB),
            notify(call_id, ours, theirs, cseq + 4, "dialog", b"<a/>", content_type="text/plain"),
            notify("no-such-call", ours, theirs, cseq + 5, "dialog", b""),
        ]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for datagram in bad:
                sock.sendto(datagram, ("127.0.0.1", connection._ua.transport.local[1]))
        await wait_until(lambda: connection.bad_input.total >= 8)
        await wait_until(lambda: connection.unknown_dialog_notifies >= 1)
        counts = connection.bad_input.counts
        assert counts["truncated"] == 1 and counts["missing-header"] == 1
        assert counts["content-length"] == 1 and counts["oversized"] == 1
        assert counts["unknown-event"] == 1 and counts["xml"] == 2
        assert counts["unsupported-body"] == 1
        # Nothing else was disturbed: a real call still arrives, the state is unchanged.
        await phone.call("confirmed")
        await reader.wait_for(
            lambda e: isinstance(e, LineStateEvent) and e.state is LineState.ON_THE_PHONE
        )
        assert connection.status().state is ConnectionState.CONNECTED
        assert not any(
            isinstance(e, LineStateEvent) and e.state is LineState.HELD for e in reader.events
        )
        await asyncio.sleep(0)
    finally:
        await phone.close()
        await reader.close()
        await connection.stop()
