"""SipConnection against a real Kamailio presence server, watched by SIPp (not our code)."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from m365pbx.core.presence import LineState, PbxPresence
from m365pbx.pbx.base import (
    ConnectionState,
    LineStateEvent,
    PbxConnection,
    PbxPresenceEvent,
    PbxUser,
)
from m365pbx.pbx.sip.pidf import NS_DM, NS_PIDF, NS_RPID
from tests.e2e.sip_snapshot import PresenceSnapshot
from tests.pbx.sip.helpers import EventReader, Phone, connect, wait_until
from tests.pbx.sip.kamailio import KamailioServer
from tests.pbx.sip.sipp import Watcher

PIDF = f"{{{NS_PIDF}}}"
DM = f"{{{NS_DM}}}"
RPID = f"{{{NS_RPID}}}"


def person(name: str) -> PbxUser:
    return PbxUser(name, {"extension": name, "cn": name.title()})


async def away_alone(tmp_path: Path, kamailio: KamailioServer, key: str) -> str:
    """The body a watcher of `key` gets once it shows away: one tuple, no dnd beside it."""
    watcher = Watcher(tmp_path, kamailio.port, key, "rpid:away")
    await watcher.start()
    run = await watcher.result()
    assert run.returncode == 0, run.output
    body = [b for b in run.notify_bodies if "rpid:away" in b][-1]
    assert "dnd" not in body
    assert len(ET.fromstring(body).findall(f"{PIDF}tuple")) == 1
    return body


def last_matching(bodies: list[str], text: str) -> ET.Element:
    matching = [body for body in bodies if text in body]
    assert matching, bodies
    return ET.fromstring(matching[-1])


def activities(root: ET.Element) -> list[str]:
    found = root.find(f"{DM}person/{RPID}activities")
    assert found is not None
    return [child.tag.rpartition("}")[2] for child in found]


async def test_dnd_reaches_an_independent_watcher(kamailio: KamailioServer, tmp_path: Path) -> None:
    connection = await connect(kamailio)
    assert isinstance(connection, PbxConnection)
    try:
        watcher = Watcher(tmp_path, kamailio.port, "anna", "dnd")
        await watcher.start()
        await connection.set_presence(person("anna"), PbxPresence.DND, "")
        run = await watcher.result()
        assert run.returncode == 0, run.output
        root = last_matching(run.notify_bodies, "dnd")
        assert root.get("entity") == "sip:anna@127.0.0.1"
        assert activities(root) == ["busy", "other"]
        assert root.findtext(f"{DM}person/{RPID}activities/{RPID}other") == "dnd"
        assert root.findtext(f"{DM}person/{DM}note") == "Do not disturb"
        assert root.findtext(f"{PIDF}tuple/{PIDF}status/{PIDF}basic") == "open"
        assert connection.status().state is ConnectionState.CONNECTED
        assert connection.bad_input.total == 0
    finally:
        await connection.stop()


@pytest.mark.parametrize(
    ("presence", "note", "activity", "expected_note"),
    [
        (PbxPresence.AWAY, "", "away", "Away"),
        (PbxPresence.BUSY, "", "busy", "Busy"),
        (PbxPresence.ON_THE_PHONE, "", "on-the-phone", "On the phone"),
        (PbxPresence.MEETING, "Budget review", "meeting", "Budget review"),
    ],
)
async def test_every_presence_as_the_mapping_table_says(
    kamailio: KamailioServer,
    tmp_path: Path,
    presence: PbxPresence,
    note: str,
    activity: str,
    expected_note: str,
) -> None:
    name = f"p{presence.value.replace('-', '')}"
    connection = await connect(kamailio)
    try:
        await connection.set_presence(person(name), presence, note)
        watcher = Watcher(tmp_path, kamailio.port, name, f"rpid:{activity}")
        await watcher.start()
        run = await watcher.result()
        assert run.returncode == 0, run.output
        root = last_matching(run.notify_bodies, f"rpid:{activity}")
        assert activities(root) == [activity]
        assert root.findtext(f"{DM}person/{DM}note") == expected_note
    finally:
        await connection.stop()


async def test_changes_modify_the_one_publication_and_online_removes_it(
    kamailio: KamailioServer, tmp_path: Path
) -> None:
    connection = await connect(kamailio)
    bert = person("bert")
    try:
        await connection.set_presence(bert, PbxPresence.AWAY, "")
        await connection.set_presence(bert, PbxPresence.DND, "")
        watcher = Watcher(tmp_path, kamailio.port, "bert", "dnd", "closed")
        await watcher.start()
        await watcher.received("dnd")  # subscribed: the change below comes as a new NOTIFY
        await connection.set_presence(bert, PbxPresence.ONLINE, "")
        run = await watcher.result()
        assert run.returncode == 0, run.output
        first = last_matching(run.notify_bodies, "dnd")
        # One publication: the aggregate holds one tuple and one person, not the old "away".
        assert len(first.findall(f"{PIDF}tuple")) == 1 and "away" not in activities(first)
        closed = last_matching(run.notify_bodies, "closed")
        assert closed.find(f"{DM}person") is None
        assert closed.findtext(f"{PIDF}tuple/{PIDF}status/{PIDF}basic") == "closed"
    finally:
        await connection.stop()


async def test_publications_are_refreshed_before_they_expire(
    kamailio: KamailioServer, tmp_path: Path
) -> None:
    # Kamailio 5.6 does not apply min_expires to PUBLISH, so 2 s publications are allowed.
    connection = await connect(kamailio, publish_expires=2)
    try:
        await connection.set_presence(person("cleo"), PbxPresence.BUSY, "")
        await asyncio.sleep(4.5)  # two publication lifetimes
        watcher = Watcher(tmp_path, kamailio.port, "cleo", "rpid:busy")
        await watcher.start()
        run = await watcher.result()
        assert run.returncode == 0, run.output
    finally:
        await connection.stop()


async def test_a_phone_call_reaches_the_pbx_to_teams_input(kamailio: KamailioServer) -> None:
    connection = await connect(kamailio)
    reader = EventReader(connection)
    phone = await Phone(kamailio, "dora").start()
    try:
        await connection.watch([person("dora")])
        await reader.wait_for(lambda e: isinstance(e, LineStateEvent) and e.state is LineState.IDLE)
        steps = [
            (dict(state="early"), LineState.RINGING),
            (dict(state="confirmed"), LineState.ON_THE_PHONE),
            (dict(state="confirmed", held=True), LineState.HELD),
            (dict(state="confirmed"), LineState.ON_THE_PHONE),
            (dict(state="terminated"), LineState.IDLE),
            (dict(state="early", direction="initiator"), LineState.ON_THE_PHONE),
            (dict(state=None), LineState.IDLE),
        ]
        for call, expected in steps:
            seen = len(reader.events)
            await phone.call(**call)  # type: ignore[arg-type]
            await reader.wait_for(
                lambda e, n=seen, s=expected: (
                    reader.events.index(e) >= n and isinstance(e, LineStateEvent) and e.state is s
                )
            )
        line_events = [e for e in reader.events if isinstance(e, LineStateEvent)]
        assert all(e.key == "dora" for e in line_events)
        assert [e.sequence for e in reader.events] == sorted(e.sequence for e in reader.events)
        assert connection.bad_input.total == 0
    finally:
        await phone.close()
        await reader.close()
        await connection.stop()


PHONE_DND = b"""<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
  xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:emil@127.0.0.1">
 <tuple id="yealink-1"><status><basic>open</basic></status></tuple>
 <dm:person id="yealink-p"><rpid:activities><rpid:busy/></rpid:activities>
  <dm:note>Do Not Disturb</dm:note></dm:person>
</presence>"""


async def test_presence_set_on_the_phone_is_reported_without_our_own_echo(
    kamailio: KamailioServer,
) -> None:
    from m365pbx.pbx.sip import Publication, UaConfig, UserAgent

    connection = await connect(kamailio, watch_presence=True)
    reader = EventReader(connection)
    ua = UserAgent(UaConfig(server=("127.0.0.1", kamailio.port)))
    await ua.start()
    phone = Publication(ua, "sip:emil@127.0.0.1", "sip:emil@127.0.0.1")
    emil = person("emil")
    try:
        await connection.watch([emil])
        await reader.wait_for(lambda e: isinstance(e, PbxPresenceEvent))
        await connection.set_presence(emil, PbxPresence.MEETING, "Stand-up")
        phone.desired = PHONE_DND
        assert (await phone.sync()).ok
        event = await reader.wait_for(
            lambda e: isinstance(e, PbxPresenceEvent) and e.presence is PbxPresence.DND
        )
        assert isinstance(event, PbxPresenceEvent) and event.note == "Do Not Disturb"
        phone.desired = None
        assert (await phone.sync()).ok
        await reader.wait_for(
            lambda e: (
                isinstance(e, PbxPresenceEvent)
                and e.presence is PbxPresence.ONLINE
                and reader.events.index(e) > reader.events.index(event)
            )
        )
        presences = [e.presence for e in reader.events if isinstance(e, PbxPresenceEvent)]
        assert PbxPresence.MEETING not in presences  # our own publication never echoes back
    finally:
        await ua.close()
        await reader.close()
        await connection.stop()


async def test_over_tcp(kamailio: KamailioServer, tmp_path: Path) -> None:
    connection = await connect(kamailio, transport="tcp")
    reader = EventReader(connection)
    phone = await Phone(kamailio, "finn").start()
    try:
        watcher = Watcher(tmp_path, kamailio.port, "finn", "dnd")
        await watcher.start()
        await connection.set_presence(person("finn"), PbxPresence.DND, "")
        run = await watcher.result()
        assert run.returncode == 0, run.output
        await connection.watch([person("finn")])
        await phone.call("confirmed")
        await reader.wait_for(
            lambda e: isinstance(e, LineStateEvent) and e.state is LineState.ON_THE_PHONE
        )
    finally:
        await phone.close()
        await reader.close()
        await connection.stop()


async def test_watch_replaces_the_set_and_stop_withdraws(
    kamailio: KamailioServer, tmp_path: Path
) -> None:
    connection = await connect(kamailio)
    try:
        await connection.watch([person("gus"), person("hal")])
        assert len(connection._dialogs) == 2
        await connection.watch([person("hal"), PbxUser("nobody", {})])
        await wait_until(lambda: len(connection._dialogs) == 1)
        assert "nobody" in connection.unaddressable
        await connection.set_presence(person("gus"), PbxPresence.DND, "")
        watcher = Watcher(tmp_path, kamailio.port, "gus", "dnd", "closed")
        await watcher.start()
        await watcher.received("dnd")  # subscribed before stop() withdraws the publication
    finally:
        await connection.stop()
    run = await watcher.result()
    assert run.returncode == 0, run.output  # stop() removed the publication
    assert connection.status().state is ConnectionState.STOPPED
    assert await connection.list_users() == []


async def test_a_restarted_connection_takes_over_its_old_publication(
    kamailio: KamailioServer, tmp_path: Path
) -> None:
    quinn = person("quinn")
    before = await connect(kamailio)
    await before.set_presence(quinn, PbxPresence.DND, "before the restart")
    etags = before.publication_etags()
    assert set(etags) == {"quinn"}
    after = await connect(kamailio)  # the new process, with the ETag from the store
    try:
        after.restore_publication(quinn, etags["quinn"])
        await after.set_presence(quinn, PbxPresence.AWAY, "after the restart")
        body = await away_alone(tmp_path, kamailio, "quinn")
        # One publication: the old note is gone instead of showing next to the new one.
        assert "before the restart" not in body
    finally:
        await after.stop()
        await before.stop()


async def test_a_publication_left_by_a_killed_node_is_hidden_by_the_next_one(
    kamailio: KamailioServer, tmp_path: Path
) -> None:
    # A node killed between a PUBLISH's answer and the save of its ETag leaves a
    # publication nobody can modify or remove (docs/sip.md). Kamailio's presence_xml shows
    # one document per tuple id, the one published last (to the second), and ours always
    # carry the same tuple id: the next node's publication hides the orphan's state.
    rosa = person("rosa")
    killed = await connect(kamailio)
    await killed.set_presence(rosa, PbxPresence.DND, "left by the killed node")
    killed.may_publish = lambda: False  # dead: it sends nothing more, not even a removal
    await asyncio.sleep(1.1)  # the next holder publishes a lease's expiry later: seconds
    successor = await connect(kamailio)
    try:
        await successor.set_presence(rosa, PbxPresence.AWAY, "the next holder's")
        body = await away_alone(tmp_path, kamailio, "rosa")
        assert "left by the killed node" not in body
    finally:
        await successor.stop()
        await killed.stop()


async def test_a_killed_node_s_orphan_is_hidden_when_the_next_one_shows_online(
    kamailio: KamailioServer,
) -> None:
    # The killed node saved its first ETag, then changed the publication (a new ETag)
    # and died before saving again. The next holder's stored ETag is refused; for a
    # person it shows online it cannot remove the orphan, so it covers it with a
    # publication that says nothing, for as long as the orphan may live.
    sam = person("sam")
    killed = await connect(kamailio)
    await killed.set_presence(sam, PbxPresence.DND, "saved")
    saved = killed.publication_etags()["sam"]
    await killed.set_presence(sam, PbxPresence.AWAY, "answered, never saved")
    killed.may_publish = lambda: False  # dead: it sends nothing more, not even a removal
    await asyncio.sleep(1.1)  # a lease's expiry later: seconds
    successor = await connect(kamailio)
    try:
        successor.restore_publication(sam, saved)
        await successor.set_presence(sam, PbxPresence.ONLINE, "")
        assert await shown(kamailio, "sam") == "online"
        # Within that time a change shows, and online again hides the orphan again.
        await successor.set_presence(sam, PbxPresence.DND, "")
        assert await shown(kamailio, "sam") == "dnd"
        await successor.set_presence(sam, PbxPresence.ONLINE, "")
        assert await shown(kamailio, "sam") == "online"
    finally:
        await successor.stop()
        await killed.stop()


async def shown(kamailio: KamailioServer, key: str) -> str:
    """What a watcher subscribing now is shown for `key`, in one word."""
    return (await PresenceSnapshot(kamailio.port).read([key]))[key]
