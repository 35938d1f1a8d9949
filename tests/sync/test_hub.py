"""The presence hub: per-person order, coalescing, priority for calls, retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from m365pbx.core.mapping import DEFAULT_RULES, CompiledMapping
from m365pbx.core.policy import (
    LineReading,
    PbxReading,
    PolicyConfig,
    StatusAction,
    TeamsAction,
    TeamsReading,
)
from m365pbx.core.presence import Activity, Availability, LineState, PbxPresence, TeamsPresence
from m365pbx.pbx.base import PbxUser
from m365pbx.sync.hub import PresenceHub, RetryLater
from m365pbx.sync.people import Person
from m365sim.clock import VirtualClock

CONFIG = PolicyConfig(mapping=CompiledMapping(DEFAULT_RULES))
BUSY = TeamsPresence(Availability.BUSY, Activity.BUSY)
AWAY = TeamsPresence(Availability.AWAY, Activity.AWAY)
DND = TeamsPresence(Availability.DO_NOT_DISTURB, Activity.DO_NOT_DISTURB)
AVAILABLE = TeamsPresence(Availability.AVAILABLE, Activity.AVAILABLE)


class RecordingPbx:
    """A PBX side that records what it was asked to show; optionally slow or failing."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, PbxPresence]] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()  # set once a write has started
        self.fail_next = 0
        self.concurrent = 0
        self.max_concurrent_per_person = 0

    async def show(self, person: Person, presence: PbxPresence, note: str) -> None:
        self.concurrent += 1
        self.max_concurrent_per_person = max(self.max_concurrent_per_person, self.concurrent)
        self.entered.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.fail_next:
                self.fail_next -= 1
                raise RetryLater(5.0, "PBX busy")
            self.shown.append((person.key, presence))
        finally:
            self.concurrent -= 1


class RecordingTeams:
    def __init__(self) -> None:
        self.actions: list[tuple[str, TeamsAction | StatusAction]] = []

    async def apply(self, person: Person, action: TeamsAction | StatusAction) -> None:
        self.actions.append((person.key, action))


def person(pid: int, key: str) -> Person:
    return Person(id=pid, connection="pbx", pbx_user=PbxUser(key), teams_user_id=f"user-{pid}")


@pytest.fixture
async def world() -> AsyncIterator[tuple[PresenceHub, RecordingPbx, RecordingTeams,
                                         VirtualClock]]:
    clock = VirtualClock()
    pbx, teams = RecordingPbx(), RecordingTeams()
    hub = PresenceHub(clock, pbx, teams, lambda _p: CONFIG, workers=4)
    hub.set_people([person(1, "anna"), person(2, "ben")])
    task = asyncio.create_task(hub.run())
    yield hub, pbx, teams, clock
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def reading(clock: VirtualClock, presence: TeamsPresence, seq: int) -> TeamsReading:
    return TeamsReading(presence, clock.now().timestamp(), f"{seq:08d}")


async def test_a_teams_change_reaches_the_pbx(world) -> None:  # type: ignore[no-untyped-def]
    hub, pbx, _, clock = world
    hub.teams_reading("USER-1", reading(clock, BUSY, 1))
    await hub.settled()
    assert pbx.shown == [("anna", PbxPresence.BUSY)]


async def test_a_burst_for_one_person_is_coalesced_and_the_newest_wins(world) -> None:  # type: ignore[no-untyped-def]
    hub, pbx, _, clock = world
    pbx.gate = asyncio.Event()
    hub.teams_reading("user-1", reading(clock, BUSY, 1))
    await asyncio.wait_for(pbx.entered.wait(), 10)  # the first write is held at the gate
    for seq in range(2, 200):
        hub.teams_reading("user-1", reading(clock, AWAY if seq % 2 else BUSY, seq))
    hub.teams_reading("user-1", reading(clock, DND, 200))
    pbx.gate.set()
    await hub.settled()
    assert pbx.shown == [("anna", PbxPresence.BUSY), ("anna", PbxPresence.DND)]
    assert pbx.max_concurrent_per_person == 1


async def test_stale_readings_are_refused_and_counted(world) -> None:  # type: ignore[no-untyped-def]
    hub, pbx, _, clock = world
    hub.teams_reading("user-2", reading(clock, DND, 10))
    hub.teams_reading("user-2", reading(clock, AWAY, 9))
    await hub.settled()
    assert pbx.shown == [("ben", PbxPresence.DND)]
    assert hub.counters["stale_teams_readings"] == 1


async def test_a_call_becomes_a_teams_session_and_its_end_is_held_down(world) -> None:  # type: ignore[no-untyped-def]
    hub, _, teams, clock = world
    now = clock.now().timestamp()
    hub.line_state("pbx", "anna", LineReading(LineState.ON_THE_PHONE, now, 1))
    await hub.settled()
    assert [a.presence for _, a in teams.actions] == [TeamsPresence(Availability.BUSY,
                                                                    Activity.IN_A_CALL)]
    hub.line_state("pbx", "anna", LineReading(LineState.IDLE, now, 2))
    await hub.settled()
    assert len(teams.actions) == 1  # not yet: the hold-down
    await clock.advance(CONFIG.call_end_hold_down + 0.5)
    await hub.settled()
    assert [a.presence for _, a in teams.actions][-1] is None


async def test_a_deferred_write_is_retried_with_the_latest_state(world) -> None:  # type: ignore[no-untyped-def]
    hub, pbx, _, clock = world
    pbx.fail_next = 1
    hub.teams_reading("user-1", reading(clock, BUSY, 1))
    await hub.settled()
    assert pbx.shown == []
    hub.teams_reading("user-1", reading(clock, AWAY, 2))  # arrives while waiting to retry
    await hub.settled()
    assert pbx.shown == [("anna", PbxPresence.AWAY)]
    assert hub.counters["writes_deferred"] == 1


async def test_unknown_users_are_counted_not_fatal(world) -> None:  # type: ignore[no-untyped-def]
    hub, _, _, clock = world
    assert hub.teams_reading("nobody", reading(clock, BUSY, 1)) == 0
    assert not hub.line_state("pbx", "nobody", LineReading(LineState.IDLE, 0.0, 1))
    assert hub.counters["teams_readings_for_unknown_users"] == 1
    assert hub.counters["pbx_events_for_unknown_users"] == 1


NOTES = replace(CONFIG, push_pbx_note=True)


async def test_the_hub_reads_teams_before_writing_a_status_message() -> None:
    clock = VirtualClock()
    pbx, teams = RecordingPbx(), RecordingTeams()
    reads: list[str] = []
    shown_message = "Parental leave"

    async def reader(who: Person) -> TeamsReading:
        reads.append(who.key)
        return TeamsReading(AVAILABLE, clock.now().timestamp(), f"{100 + len(reads):08d}",
                            shown_message, direct=True)

    hub = PresenceHub(clock, pbx, teams, lambda _p: NOTES, workers=2, teams_reader=reader)
    hub.set_people([person(1, "anna")])
    task = asyncio.create_task(hub.run())
    try:
        now = clock.now().timestamp()
        hub.pbx_presence("pbx", "anna", PbxReading(PbxPresence.AWAY, now, "At lunch", 1))
        await hub.settled()
        # Her own message stands: read, and no status write.
        assert reads == ["anna"]
        assert not any(isinstance(a, StatusAction) for _, a in teams.actions)

        shown_message = ""
        await clock.advance(60)
        hub.pbx_presence("pbx", "anna", PbxReading(PbxPresence.AWAY, clock.now().timestamp(),
                                                   "Back at 2", 2))
        await hub.settled()
        assert reads == ["anna", "anna"]
        assert [a for _, a in teams.actions if isinstance(a, StatusAction)] == [
            StatusAction("Back at 2", 7 * 86400.0)]
        assert hub.counters["teams_reads"] == 2
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_read_back_older_than_what_the_hub_holds_does_not_loop() -> None:
    clock = VirtualClock()
    pbx, teams = RecordingPbx(), RecordingTeams()
    reads = 0

    async def reader(_who: Person) -> TeamsReading:
        nonlocal reads
        reads += 1
        return TeamsReading(AVAILABLE, clock.now().timestamp(), "00000001", "", direct=True)

    hub = PresenceHub(clock, pbx, teams, lambda _p: NOTES, workers=2, teams_reader=reader)
    hub.set_people([person(1, "anna")])
    task = asyncio.create_task(hub.run())
    try:
        hub.teams_reading("user-1", TeamsReading(AVAILABLE, clock.now().timestamp(), "00000009"))
        hub.pbx_presence("pbx", "anna", PbxReading(PbxPresence.AWAY, clock.now().timestamp(),
                                                   "At lunch", 1))
        await hub.settled()
        # Refused as stale: tried again later, not at once (the preferred write made one
        # more look due).
        assert reads <= 2
        before = reads
        await clock.advance(31)
        await hub.settled()
        assert before < reads <= before + 2
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_the_hub_reads_teams_before_writing_or_clearing_a_preferred_presence() -> None:
    clock = VirtualClock()
    steps: list[str] = []
    shown = AVAILABLE

    class Teams(RecordingTeams):
        async def apply(self, person: Person, action: TeamsAction | StatusAction) -> None:
            assert isinstance(action, TeamsAction)
            steps.append(f"write {action.presence}")

    async def reader(_who: Person) -> TeamsReading:
        steps.append(f"read {shown}")
        return TeamsReading(shown, clock.now().timestamp(), f"{len(steps):08d}", direct=True)

    hub = PresenceHub(clock, RecordingPbx(), Teams(), lambda _p: CONFIG, workers=2,
                      teams_reader=reader)
    hub.set_people([person(1, "anna")])
    task = asyncio.create_task(hub.run())
    try:
        hub.pbx_presence("pbx", "anna", PbxReading(PbxPresence.AWAY, clock.now().timestamp()))
        await hub.settled()
        assert steps == [f"read {AVAILABLE}", f"write {AWAY}"]

        # She picks Do not disturb in Teams; its notification has not come yet.
        shown = DND
        await clock.advance(2)
        hub.pbx_presence("pbx", "anna", PbxReading(PbxPresence.ONLINE,
                                                   clock.now().timestamp()))
        await hub.settled()
        # The read shows her choice: nothing of hers is cleared.
        assert steps[2:] == [f"read {DND}"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
