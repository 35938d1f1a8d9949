"""Taking over publications after a restart: publications(), restore_publication, 412, settling.

Against a scripted server that keeps ETags the way Kamailio does (fakeserver.EtagServer).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.base import ConnectionState, PbxUser
from m365pbx.pbx.sip import Addressing, Backoff, HeldPublication, SipConnection, SipOptions, Timers
from m365pbx.pbx.sip.message import SipRequest, SipResponse
from tests.pbx.sip.fakeserver import EtagServer, FakeServer, answer, start_fake_server
from tests.pbx.sip.helpers import wait_until

ANNA = PbxUser("anna", {"extension": "201", "cn": "Anna"})
BEN = PbxUser("ben", {"extension": "202"})
# Keep-alives far apart: each also refreshes a publication (the canary that notices a
# restarted server), which would add PUBLISHes to the ones these tests look at.
FAST: dict[str, Any] = dict(
    keepalive_interval=30.0,
    keepalive_timeout=0.3,
    timers=Timers(t1=0.02, t2=0.08, t4=0.1),
    backoff=Backoff(initial=0.05, maximum=0.2),
)
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


class Clock:
    """A hand-set `now` for the connection."""

    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at


async def started(script: EtagServer, clock: Clock) -> tuple[FakeServer, SipConnection]:
    server = await start_fake_server(script)
    options = replace(
        SipOptions(server=server.address, addressing=Addressing("example.com")), **FAST
    )
    connection = SipConnection("unit", options, now=clock.now)
    await connection.start()
    await wait_until(lambda: connection.status().state is ConnectionState.CONNECTED)
    return server, connection


async def test_publications_carry_user_etag_and_expiry_and_announce_changes() -> None:
    script, clock = EtagServer(), Clock()
    server, connection = await started(script, clock)
    changes: list[dict[str, HeldPublication]] = []
    connection.on_publications_changed = lambda _key: changes.append(connection.publications())
    try:
        await connection.set_presence(ANNA, PbxPresence.DND, "")
        expected = HeldPublication(ANNA, "e1", T0 + timedelta(seconds=600))
        assert connection.publications() == {"anna": expected}
        assert changes == [{"anna": expected}]
        await connection.set_presence(ANNA, PbxPresence.DND, "")  # nothing sent, no change
        assert len(changes) == 1
        clock.at = T0 + timedelta(minutes=1)
        await connection.set_presence(ANNA, PbxPresence.AWAY, "")  # a modify: a new ETag
        assert connection.publications()["anna"].etag == "e2"
        assert connection.publications()["anna"].expires_at == clock.at + timedelta(seconds=600)
        await connection.set_presence(ANNA, PbxPresence.ONLINE, "")
        assert connection.publications() == {} and changes[-1] == {}
        assert len(changes) == 3
    finally:
        await connection.stop()
        server.close()


async def test_an_expired_publication_is_not_listed() -> None:
    script, clock = EtagServer(), Clock()
    server, connection = await started(script, clock)
    try:
        await connection.set_presence(ANNA, PbxPresence.BUSY, "")
        clock.at = T0 + timedelta(seconds=600)
        assert connection.publications() == {}
        assert connection.publication_etags() == {"anna": "e1"}
    finally:
        await connection.stop()
        server.close()


async def test_a_restored_etag_makes_the_first_publish_a_modify() -> None:
    script, clock = EtagServer(), Clock()
    script.live["old"] = b"<presence>before the restart</presence>"
    server, connection = await started(script, clock)
    try:
        connection.restore_publication(ANNA, "old", T0 + timedelta(minutes=5))
        assert connection.publications() == {
            "anna": HeldPublication(ANNA, "old", T0 + timedelta(minutes=5))
        }
        assert server.of("PUBLISH") == []  # restoring sends nothing
        await connection.set_presence(ANNA, PbxPresence.AWAY, "after")
        [publish] = server.of("PUBLISH")
        assert publish.headers.get("sip-if-match") == "old"
        assert b"after" in publish.body
        assert list(script.live) == ["e1"]  # one publication, the old one modified
    finally:
        await connection.stop()
        server.close()


async def test_a_stale_restored_etag_gets_412_and_a_fresh_publish() -> None:
    script, clock = EtagServer(), Clock()
    server, connection = await started(script, clock)
    try:
        connection.restore_publication(ANNA, "lost-in-a-server-crash")
        assert connection.publications()["anna"].expires_at == T0 + timedelta(seconds=600)
        await connection.set_presence(ANNA, PbxPresence.DND, "")
        first, second = server.of("PUBLISH")
        assert first.headers.get("sip-if-match") == "lost-in-a-server-crash"
        assert second.headers.get("sip-if-match") is None and second.body
        assert connection.publications()["anna"].etag == "e1"
        assert connection.status().state is ConnectionState.CONNECTED
    finally:
        await connection.stop()
        server.close()


async def test_settling_withdraws_only_the_unclaimed_restored_publications() -> None:
    script, clock = EtagServer(), Clock()
    script.live.update({"old-anna": b"dnd", "old-ben": b"away"})
    server, connection = await started(script, clock)
    try:
        connection.restore_publication(ANNA, "old-anna")
        connection.restore_publication(BEN, "old-ben")
        await connection.set_presence(ANNA, PbxPresence.BUSY, "")  # claimed
        await connection.settle_restored()  # ben is online now: nobody set him
        removal = server.of("PUBLISH")[-1]
        assert removal.headers.get("sip-if-match") == "old-ben"
        assert removal.headers.get("expires") == "0"
        assert list(script.live) == ["e1"]
        assert set(connection.publications()) == {"anna"}
        await connection.settle_restored()  # only once
        assert len(server.of("PUBLISH")) == 2
    finally:
        await connection.stop()
        server.close()


async def test_an_adopted_etag_the_server_refuses_otherwise_is_dropped_too() -> None:
    script, clock = EtagServer(), Clock()
    server, connection = await started(script, clock)
    plain = script.__call__

    def foreign_etags_get_500(request: SipRequest) -> SipResponse:
        if (request.headers.get("sip-if-match") or "").startswith("foreign"):
            return answer(request, 500, "Server Internal Error")
        return plain(request)

    server.responder = foreign_etags_get_500
    try:
        connection.restore_publication(ANNA, "foreign-1")
        connection.restore_publication(BEN, "foreign-2")
        await connection.set_presence(ANNA, PbxPresence.DND, "")
        first, second = server.of("PUBLISH")
        assert first.headers.get("sip-if-match") == "foreign-1"
        assert second.headers.get("sip-if-match") is None and second.body
        assert connection.status().state is ConnectionState.CONNECTED
        await connection.settle_restored()  # removing ben's: refused, so nothing to remove
        assert server.of("PUBLISH")[-1].headers.get("sip-if-match") == "foreign-2"
        assert set(connection.publications()) == {"anna"}
        # Once confirmed, an ETag is no longer adopted: a 500 is a failure to retry again.
        script.live.clear()
        server.responder = lambda request: (
            answer(request, 500, "Server Internal Error")
            if request.method == "PUBLISH" else answer(request, 200)
        )
        await connection.set_presence(ANNA, PbxPresence.AWAY, "")
        assert connection.status().state is ConnectionState.DEGRADED
        assert connection.publication_etags() == {"anna": "e1"}
    finally:
        server.responder = plain
        await connection.stop()
        server.close()


async def test_an_unclaimed_taken_over_publication_is_refreshed_before_it_expires() -> None:
    # Several nodes (docs/cluster.md): the node taking a tenant over may not know a
    # person's presence yet; their publication must not lapse meanwhile.
    script, clock = EtagServer(), Clock()
    script.live["old"] = b"<presence>dnd, by the previous holder</presence>"
    server = await start_fake_server(script)
    options = replace(
        SipOptions(server=server.address, addressing=Addressing("example.com")), **FAST
    )
    connection = SipConnection("unit", options, now=clock.now)
    connection.restore_publication(ANNA, "old", T0 + timedelta(seconds=3))
    await connection.start()
    try:
        await wait_until(lambda: bool(server.of("PUBLISH")), within=10)
        [refresh] = server.of("PUBLISH")
        assert refresh.headers.get("sip-if-match") == "old" and not refresh.body
        assert script.live == {"e1": b"<presence>dnd, by the previous holder</presence>"}
        assert connection.publications()["anna"].etag == "e1"
        # Claimed later: the new body modifies that same publication.
        await connection.set_presence(ANNA, PbxPresence.AWAY, "now known")
        claim = server.of("PUBLISH")[-1]
        assert claim.headers.get("sip-if-match") == "e1" and b"now known" in claim.body
        assert list(script.live) == ["e2"]
    finally:
        await connection.stop()
        server.close()


async def test_a_cover_over_a_lost_publication_is_removed_once_that_one_has_expired() -> None:
    script = EtagServer()
    server = await start_fake_server(script)
    options = replace(SipOptions(server=server.address, addressing=Addressing("example.com")),
                      **FAST, publish_expires=2, refresh_margin=0.5)
    connection = SipConnection("unit", options)
    await connection.start()
    try:
        await wait_until(lambda: connection.status().state is ConnectionState.CONNECTED)
        connection.restore_publication(ANNA, "lost-by-a-killed-node")  # 412: unknown here
        await connection.set_presence(ANNA, PbxPresence.ONLINE, "")
        stale, cover = server.of("PUBLISH")  # the removal it was asked for, refused; a cover
        assert stale.headers.get("sip-if-match") == "lost-by-a-killed-node"
        # Not a removal: a publication that shows nothing, over the one that may live on.
        assert cover.headers.get("sip-if-match") is None and b"<basic>open</basic>" in cover.body
        assert b"activities" not in cover.body
        # Refreshed while the lost one may live (publish_expires), then removed.
        await wait_until(lambda: any(r.headers.get("expires") == "0"
                                     for r in server.of("PUBLISH")[2:]), within=30)
        removal = server.of("PUBLISH")[-1]
        assert removal.headers.get("expires") == "0" and removal.headers.get("sip-if-match")
        assert len(server.of("PUBLISH")) >= 4  # stale, cover, at least one refresh, removal
        assert connection.publications() == {}
    finally:
        await connection.stop()
        server.close()
