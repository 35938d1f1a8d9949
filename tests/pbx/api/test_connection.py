"""ApiConnection: what it shows, which users it follows, and its events in order."""

from __future__ import annotations

import asyncio

import pytest

from m365pbx.core.presence import LineState, PbxPresence, PbxState
from m365pbx.pbx.api.connection import ApiConnection, ConnectionUnavailable, ShownPresence
from m365pbx.pbx.base import (
    ConnectionState,
    LineStateEvent,
    PbxConnection,
    PbxEvent,
    PbxPresenceEvent,
    PbxUser,
)

from .conftest import NOW, FixedClock


def test_it_is_a_pbx_connection() -> None:
    assert isinstance(ApiConnection("office"), PbxConnection)


async def test_status_goes_from_starting_to_connected_to_stopped(clock: FixedClock) -> None:
    connection = ApiConnection("office", clock=clock)
    assert connection.status().state is ConnectionState.STARTING
    await connection.start()
    assert connection.status().state is ConnectionState.CONNECTED
    assert connection.status().since == NOW
    assert connection.status().last_error is None
    await connection.stop()
    assert connection.status().state is ConnectionState.STOPPED


async def test_set_presence_records_and_publishes_each_change_once(
    office: ApiConnection,
) -> None:
    seen: list[ShownPresence] = []
    unsubscribe = office.on_shown(seen.append)
    await office.set_presence(PbxUser("alice"), PbxPresence.MEETING, "Weekly")
    await office.set_presence(PbxUser("alice"), PbxPresence.MEETING, "Weekly")
    await office.set_presence(PbxUser("alice"), PbxPresence.ONLINE, "ignored")
    assert [s.state for s in seen] == [
        PbxState(PbxPresence.MEETING, "Weekly"), PbxState(PbxPresence.ONLINE, "")
    ]
    assert seen[0] == ShownPresence("office", "alice", seen[0].state, NOW)
    assert office.shown("alice") == PbxState(PbxPresence.ONLINE)
    assert office.shown("bob") is None
    unsubscribe()
    await office.set_presence(PbxUser("bob"), PbxPresence.DND, "")
    assert len(seen) == 2
    assert office.shown_all() == {
        "alice": PbxState(PbxPresence.ONLINE), "bob": PbxState(PbxPresence.DND)
    }


async def test_watch_replaces_the_followed_users(office: ApiConnection) -> None:
    assert office.watches("alice") and office.watches("bob")
    await office.watch([PbxUser("carol")])
    assert not office.watches("alice")
    assert [u.key for u in office.watched()] == ["carol"]


async def test_submitted_events_come_out_in_order_and_stop_ends_them(
    office: ApiConnection,
) -> None:
    batch: list[PbxEvent] = [
        LineStateEvent("alice", LineState.RINGING, NOW, 1),
        PbxPresenceEvent("bob", PbxPresence.DND, NOW, "lunch", 7),
        LineStateEvent("alice", LineState.ON_THE_PHONE, NOW, 2),
    ]
    assert office.submit(batch[:2]) == 2
    office.submit(batch[2:])
    await office.stop()
    received = [event async for event in office.events()]
    assert received == batch


async def test_a_batch_that_does_not_fit_is_refused_whole(clock: FixedClock) -> None:
    connection = ApiConnection("office", clock=clock, event_buffer=3)
    await connection.start()
    connection.submit([LineStateEvent("a", LineState.IDLE, NOW)] * 2)
    with pytest.raises(ConnectionUnavailable, match="retry later"):
        connection.submit([LineStateEvent("b", LineState.IDLE, NOW)] * 2)
    connection.submit([LineStateEvent("c", LineState.IDLE, NOW)])
    await connection.stop()
    assert [e.key async for e in connection.events()] == ["a", "a", "c"]


async def test_a_stopped_connection_takes_no_events(office: ApiConnection) -> None:
    await office.stop()
    with pytest.raises(ConnectionUnavailable, match="stopped"):
        office.submit([LineStateEvent("alice", LineState.IDLE, NOW)])


async def test_events_wait_for_the_next_submission(office: ApiConnection) -> None:
    events = office.events()
    pending = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0.01)
    assert not pending.done()
    office.submit([LineStateEvent("bob", LineState.HELD, NOW)])
    assert (await asyncio.wait_for(pending, 1)).key == "bob"
    await office.stop()


async def test_list_users_returns_the_registered_directory(office: ApiConnection) -> None:
    assert await office.list_users() == []
    seen: list[list[PbxUser]] = []
    office.on_users(seen.append)
    users = [PbxUser("zoe", {"cn": "Zoe"}), PbxUser("adam", {"extension": "201"})]
    assert office.replace_users(users) == 2
    assert [u.key for u in await office.list_users()] == ["adam", "zoe"]
    assert seen == [await office.list_users()]


async def test_restored_users_are_listed_without_telling_the_listeners(
    office: ApiConnection,
) -> None:
    seen: list[list[PbxUser]] = []
    office.on_users(seen.append)
    saved = [PbxUser("zoe", {"cn": "Zoe"}), PbxUser("adam", {"extension": "201"})]
    assert office.restore_users(saved) == 2
    assert [u.key for u in await office.list_users()] == ["adam", "zoe"]
    assert seen == []
    # An upload is newer than anything saved: a late restore changes nothing.
    office.replace_users([PbxUser("bea")])
    assert office.restore_users(saved) == 0
    assert [u.key for u in await office.list_users()] == ["bea"]
    assert len(seen) == 1
    # Saved by another node after this one's upload (it takes the tenant over): newer.
    assert office.restore_users(saved, newer=True) == 2
    assert [u.key for u in await office.list_users()] == ["adam", "zoe"]
    assert len(seen) == 1


async def test_room_is_what_submit_takes_now(clock: FixedClock) -> None:
    small = ApiConnection("small", clock=clock, event_buffer=3)
    await small.start()
    assert small.room() == 3
    small.submit([LineStateEvent("bob", LineState.HELD, NOW)] * 2)
    assert small.room() == 1

