"""AsteriskConnection against a real Asterisk 22: Teams → device and presence states, calls and
DND → events (never our own Custom: devices), users from PJSIP, problems in words, resync."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from m365pbx.core.presence import LineState, PbxPresence
from m365pbx.pbx.asterisk import AsteriskConnection
from m365pbx.pbx.base import ConnectionState, LineStateEvent, PbxEvent, PbxPresenceEvent, PbxUser
from tests.pbx.asterisk.conftest import PEOPLE, USERS, start_server
from tests.pbx.asterisk.helpers import connection_for, until
from tests.pbx.asterisk.phones import answering_phone, calling_phone
from tests.pbx.asterisk.server import AMI_SECRET, AsteriskConfig, AsteriskServer, phones
from tests.pbx.sip.kamailio import free_port

ANNA, BEN, CARLA = (PbxUser(ext, {"extension": ext, "cn": name}) for ext, name in PEOPLE)


@pytest.fixture(scope="module")
def ben_port() -> int:
    """Where Ben's (SIPp) phone answers calls."""
    return free_port()


@pytest.fixture(scope="module")
def pbx(asterisk_root: Path, ben_port: int) -> Iterator[AsteriskServer]:
    """An Asterisk whose 2002 (Ben) has a phone at `ben_port`."""
    yield from start_server(asterisk_root, AsteriskConfig(
        phones(*PEOPLE, ports=[0, ben_port]), USERS))


class Events:
    """Collects a connection's events in the background."""

    def __init__(self, connection: AsteriskConnection) -> None:
        self.seen: list[PbxEvent] = []
        self._task = asyncio.create_task(self._collect(connection))

    async def _collect(self, connection: AsteriskConnection) -> None:
        async for event in connection.events():
            self.seen.append(event)

    def lines(self, key: str) -> list[LineState]:
        """The line states reported for `key`, in order."""
        return [e.state for e in self.seen if isinstance(e, LineStateEvent) and e.key == key]

    def presences(self, key: str) -> list[PbxPresence]:
        """The PBX presences reported for `key`, in order."""
        return [e.presence for e in self.seen if isinstance(e, PbxPresenceEvent)
                and e.key == key]

    async def close(self) -> None:
        """Stop collecting."""
        self._task.cancel()


@pytest.fixture
async def connection(pbx: AsteriskServer) -> AsyncIterator[AsteriskConnection]:
    """A started connection as the full AMI user, connected."""
    made = connection_for(pbx, dnd_poll_interval=1.0)
    await made.start()
    await until(lambda: made.status().state is ConnectionState.CONNECTED)
    try:
        yield made
    finally:
        await made.stop()


async def test_teams_presence_lights_the_hint_and_sets_presence_state(
    pbx: AsteriskServer, connection: AsteriskConnection,
) -> None:
    await connection.set_presence(ANNA, PbxPresence.DND, "Focus time, no calls")
    assert pbx.getvar("DEVICE_STATE(Custom:2001-teams)") == "BUSY"
    answer = pbx.ami("PresenceState", Provider="CustomPresence:2001")[0]
    assert answer["State"] == "dnd"
    assert answer["PresenceMessage"] == "Focus time, no calls"
    assert pbx.ami("ExtensionState", Exten="2001", Context="internal")[0]["StatusText"] == "Busy"

    await connection.set_presence(ANNA, PbxPresence.MEETING, "Budget review")
    answer = pbx.ami("PresenceState", Provider="CustomPresence:2001")[0]
    assert (answer["State"], answer["Subtype"]) == ("away", "meeting")
    assert pbx.getvar("DEVICE_STATE(Custom:2001-teams)") == "BUSY"

    await connection.set_presence(ANNA, PbxPresence.ONLINE, "")
    assert pbx.getvar("DEVICE_STATE(Custom:2001-teams)") == "NOT_INUSE"
    assert pbx.ami("PresenceState", Provider="CustomPresence:2001")[0]["State"] == "not_set"


async def test_stopping_clears_what_it_set(pbx: AsteriskServer) -> None:
    connection = connection_for(pbx)
    await connection.start()
    await until(lambda: connection.status().state is ConnectionState.CONNECTED)
    await connection.set_presence(CARLA, PbxPresence.BUSY, "Call me later")
    assert pbx.getvar("DEVICE_STATE(Custom:2003-teams)") == "BUSY"
    await connection.stop()
    # Nobody keeps the lamp right any more: it goes out rather than stay lit.
    assert pbx.getvar("DEVICE_STATE(Custom:2003-teams)") == "NOT_INUSE"
    assert pbx.ami("PresenceState", Provider="CustomPresence:2003")[0]["State"] == "not_set"
    assert connection.status().state is ConnectionState.STOPPED


async def test_users_are_the_pjsip_endpoints_with_their_caller_id_names(
    connection: AsteriskConnection,
) -> None:
    users = await connection.list_users()
    assert sorted((u.key, u.value("cn"), u.value("extension")) for u in users) == [
        ("2001", "Anna Schmidt", "2001"), ("2002", "Ben Weber", "2002"),
        ("2003", "Carla Rossi", "2003")]


async def test_a_call_is_line_state_and_our_own_busy_device_is_not(
    pbx: AsteriskServer, connection: AsteriskConnection, ben_port: int, tmp_path: Path,
) -> None:
    events = Events(connection)
    await connection.watch([ANNA, BEN])
    # Teams makes Ben busy: his Custom: device goes BUSY, which must not read as a call.
    await connection.set_presence(BEN, PbxPresence.BUSY, "")
    callee = answering_phone(tmp_path, ben_port)
    caller = calling_phone(tmp_path, pbx.sip_port, free_port(), "2001", "2002")
    await callee.start()
    try:
        await caller.start()
        await until(lambda: LineState.ON_THE_PHONE in events.lines("2002"))
        await until(lambda: LineState.ON_THE_PHONE in events.lines("2001"))
        assert LineState.RINGING in events.lines("2002")
        pbx.ami("Hangup", Channel="/^PJSIP/2001-.*$/")
        await until(lambda: events.lines("2002")[-1:] == [LineState.IDLE])
        await until(lambda: events.lines("2001")[-1:] == [LineState.IDLE])
        assert await caller.finished() == 0
        assert await callee.finished() == 0
    finally:
        await caller.stop()
        await callee.stop()
        await events.close()
    # Ben's state when watched, then the call; his own BUSY device (ours) never showed.
    assert events.lines("2002") == [LineState.IDLE, LineState.RINGING, LineState.ON_THE_PHONE,
                                    LineState.IDLE]
    await connection.set_presence(BEN, PbxPresence.ONLINE, "")


async def test_dnd_in_astdb_is_pbx_presence(
    pbx: AsteriskServer, connection: AsteriskConnection,
) -> None:
    events = Events(connection)
    try:
        await connection.watch([CARLA])
        await until(lambda: events.presences("2003") == [PbxPresence.ONLINE])
        # FreePBX's *76: the AstDB key, and its Custom:DND device (which makes us read at once).
        pbx.ami("DBPut", Family="DND", Key="2003", Val="YES")
        pbx.ami("Setvar", Variable="DEVICE_STATE(Custom:DND2003)", Value="BUSY")
        await until(lambda: events.presences("2003")[-1:] == [PbxPresence.DND])
        # Plain Asterisk without the device: the periodic read finds it.
        pbx.ami("DBDel", Family="DND", Key="2003")
        await until(lambda: events.presences("2003")[-1:] == [PbxPresence.ONLINE])
    finally:
        await events.close()


@pytest.mark.parametrize(("user", "secret", "state", "words"), [
    ("m365pbx", "wrong-" + AMI_SECRET, ConnectionState.BAD_CREDENTIALS,
     "refused the AMI login of user 'm365pbx'"),
    ("callonly", "callonly-pw", ConnectionState.ERROR, "add system to its write="),
    ("deaf", "deaf-pw", ConnectionState.ERROR, "add call to the AMI user's read="),
])
async def test_login_and_permission_problems_are_shown_with_the_fix(
    pbx: AsteriskServer, user: str, secret: str, state: ConnectionState, words: str,
) -> None:
    connection = connection_for(pbx, user, secret)
    await connection.start()
    try:
        await connection.watch([CARLA])
        await until(lambda: connection.status().state is state)
        error = connection.status().last_error
        assert error is not None and words in error and "manager.conf" in error
        assert AMI_SECRET not in error
    finally:
        await connection.stop()


async def test_a_restarted_asterisk_gets_our_states_again(
    own_asterisk: AsteriskServer,
) -> None:
    connection = connection_for(own_asterisk)
    await connection.start()
    try:
        await until(lambda: connection.status().state is ConnectionState.CONNECTED)
        await connection.set_presence(ANNA, PbxPresence.DND, "Away, back at 3")
        await asyncio.to_thread(own_asterisk.stop)
        await until(lambda: connection.status().state is ConnectionState.DEGRADED)
        assert "AMI" in (connection.status().last_error or "")
        # A fresh Asterisk (its AstDB lost) knows nothing of our states.
        (own_asterisk.folder / "lib" / "astdb.sqlite3").unlink()
        await connection.set_presence(BEN, PbxPresence.AWAY, "")  # while down: kept
        await asyncio.to_thread(own_asterisk.start)
        await until(lambda: connection.status().state is ConnectionState.CONNECTED, 60)
        await until(lambda: own_asterisk.getvar("DEVICE_STATE(Custom:2001-teams)") == "BUSY")
        answer = own_asterisk.ami("PresenceState", Provider="CustomPresence:2001")[0]
        assert (answer["State"], answer.get("PresenceMessage")) == ("dnd", "Away, back at 3")
        await until(lambda: own_asterisk.ami(
            "PresenceState", Provider="CustomPresence:2002")[0]["State"] == "away")
    finally:
        await connection.stop()


