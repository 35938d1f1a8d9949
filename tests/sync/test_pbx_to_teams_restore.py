"""After a restart: snapshots survive the store's values, merge under newer readings, and the
guard ends unconfirmed calls and clears sessions nobody serves any more."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from m365pbx.core.mapping import DEFAULT_RULES, Channel, CompiledMapping
from m365pbx.core.policy import (
    LineReading,
    PbxReading,
    PersonState,
    PolicyConfig,
    PreferredWrite,
    SessionWrite,
    TeamsAction,
    TeamsReading,
)
from m365pbx.core.presence import Activity, Availability, LineState, PbxPresence, TeamsPresence
from m365pbx.pbx.base import PbxUser
from m365pbx.sync.hub import PresenceHub
from m365pbx.sync.pbx_to_teams import RestartGuard, SavedPerson, Snapshot, merge
from m365pbx.sync.pbx_to_teams.snapshot import (
    pbx_values,
    snapshot_from_values,
    teams_seen_values,
    teams_written_values,
)
from m365pbx.sync.people import Person
from m365sim.clock import VirtualClock

CONFIG = PolicyConfig(mapping=CompiledMapping(DEFAULT_RULES))
IN_A_CALL = TeamsPresence(Availability.BUSY, Activity.IN_A_CALL)
AWAY = TeamsPresence(Availability.AWAY, Activity.AWAY)
DND = TeamsPresence(Availability.DO_NOT_DISTURB, Activity.DO_NOT_DISTURB)
AVAILABLE = TeamsPresence(Availability.AVAILABLE, Activity.AVAILABLE)


def test_a_snapshot_survives_the_stored_values() -> None:
    saved = Snapshot(
        session=SessionWrite(IN_A_CALL, 100.0, 1000.0),
        preferred=PreferredWrite(AWAY, 90.0, 90.0 + 7 * 86400),
        preferred_overridden=True, person_choice=DND,
        teams_own=TeamsReading(AVAILABLE, 80.0, status_message="lunch"),
        line=LineReading(LineState.HELD, 99.0), line_since=95.0,
        pbx_own=PbxReading(PbxPresence.AWAY, 85.0, "back at 2"),
    )
    back = snapshot_from_values(saved.session, pbx_values(saved), teams_seen_values(saved),
                                teams_written_values(saved))
    assert back == saved


def test_unreadable_values_are_left_out() -> None:
    back = snapshot_from_values(None, {"line": {"state": "dancing"}, "presence": 7},
                                {"presence": {"availability": "Busy"}},
                                {"preferred": "x", "person_choice": {"activity": "Away"}})
    assert back == Snapshot()


def test_merge_keeps_what_arrived_since_the_restart_and_drops_old_sequences() -> None:
    saved = Snapshot(session=SessionWrite(IN_A_CALL, 100.0, 1000.0),
                     line=LineReading(LineState.ON_THE_PHONE, 99.0, 4711), line_since=99.0,
                     pbx_own=PbxReading(PbxPresence.AWAY, 85.0, sequence=12),
                     teams_own=TeamsReading(AVAILABLE, 80.0, "0000000000zz"))
    fresh = merge(PersonState(), saved)
    assert fresh.session == saved.session
    assert fresh.line == LineReading(LineState.ON_THE_PHONE, 99.0, 0)
    assert fresh.pbx_own is not None and fresh.pbx_own.sequence == 0
    assert fresh.teams is not None and fresh.teams.sequence == ""
    newer = PersonState(line=LineReading(LineState.IDLE, 200.0, 1), line_since=200.0)
    merged = merge(newer, saved)
    assert merged.line == newer.line and merged.line_since == 200.0
    assert merged.session == saved.session  # still ours: the hub clears it


def test_merge_does_not_bring_back_a_preferred_presence_the_person_replaced() -> None:
    saved = Snapshot(preferred=PreferredWrite(AWAY, 0.0, None))
    overridden = PersonState(teams=TeamsReading(DND, 5.0), teams_own=TeamsReading(DND, 5.0),
                             preferred_overridden=True, person_choice=DND)
    assert merge(overridden, saved).preferred is None
    assert merge(PersonState(), saved).preferred == saved.preferred


class RecordingTeams:
    def __init__(self) -> None:
        self.actions: list[tuple[str, TeamsAction]] = []

    async def apply(self, person: Person, action: TeamsAction) -> None:
        self.actions.append((person.key, action))

    def clears(self) -> list[str]:
        return [key for key, a in self.actions
                if a.channel is Channel.SESSION and a.presence is None]


class NoPbx:
    async def show(self, person: Person, presence: PbxPresence, note: str) -> None:
        return None


@dataclass
class World:
    clock: VirtualClock
    hub: PresenceHub
    teams: RecordingTeams
    guard: RestartGuard
    forgotten: list[int] = field(default_factory=list)

    async def settle(self, seconds: float, step: float = 1.0) -> None:
        await self.hub.settled()
        for _ in range(int(seconds / step)):
            await self.clock.advance(step)
            await asyncio.sleep(0)
            await self.hub.settled()


ANNA = Person(1, "pbx", PbxUser("anna"), "user-1")
BEN = Person(2, "pbx", PbxUser("ben"), "user-2")


@pytest.fixture
async def world() -> AsyncIterator[World]:
    clock = VirtualClock()
    teams = RecordingTeams()
    hub = PresenceHub(clock, NoPbx(), teams, lambda _p: CONFIG, workers=4)
    forgotten: list[int] = []
    guard = RestartGuard(hub, teams, clock, forget=forgotten.append, confirm_within=60,
                         orphan_grace=120)
    hub.on_people(guard.people_changed)
    tasks = [asyncio.create_task(hub.run()), asyncio.create_task(guard.run())]
    yield World(clock, hub, teams, guard, forgotten)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def in_call(clock: VirtualClock, person: Person) -> SavedPerson:
    """Saved just before the crash: on the phone, our session written a minute ago."""
    now = clock.now().timestamp()
    return SavedPerson(person, Snapshot(
        session=SessionWrite(IN_A_CALL, now - 60, now + 840),
        line=LineReading(LineState.ON_THE_PHONE, now - 60, 9), line_since=now - 60))


async def test_a_call_the_pbx_does_not_confirm_is_ended_after_a_minute(world: World) -> None:
    world.guard.load({1: in_call(world.clock, ANNA)})
    world.hub.set_people([ANNA])
    await world.settle(59)
    assert world.teams.actions == []  # restored as ours: no new write, no clear yet
    await world.settle(2)
    assert world.teams.clears() == ["anna"]
    assert world.guard.counters["unconfirmed_calls_ended"] == 1


async def test_a_call_the_pbx_confirms_is_kept_and_refreshed(world: World) -> None:
    world.guard.load({1: in_call(world.clock, ANNA)})
    world.hub.set_people([ANNA])
    now = world.clock.now().timestamp()
    # The PBX restarted too: its counter starts again at 1, below the saved 9.
    assert world.hub.line_state("pbx", "anna", LineReading(LineState.ON_THE_PHONE, now, 1))
    await world.settle(900, step=10)
    assert world.teams.clears() == []
    assert [a.presence for _, a in world.teams.actions] == [IN_A_CALL]  # the refresh


async def test_a_saved_session_whose_person_never_returns_is_cleared_after_the_grace(
    world: World,
) -> None:
    world.guard.load({2: in_call(world.clock, BEN)})
    world.hub.set_people([ANNA])
    await world.settle(110)
    assert world.teams.actions == []
    await world.settle(20)
    assert world.teams.clears() == ["ben"]
    assert world.forgotten == [2]


async def test_someone_who_leaves_during_a_call_has_their_session_cleared(
    world: World,
) -> None:
    world.hub.set_people([ANNA, BEN])
    world.guard.load({})
    now = world.clock.now().timestamp()
    world.hub.line_state("pbx", "ben", LineReading(LineState.ON_THE_PHONE, now, 1))
    world.hub.listen(world.guard.observe)
    await world.settle(1)
    assert [a.presence for _, a in world.teams.actions] == [IN_A_CALL]
    world.hub.set_people([ANNA])
    await world.settle(1)
    assert world.teams.clears() == ["ben"]


async def test_a_saved_session_that_lapses_before_the_grace_needs_no_request(
    world: World,
) -> None:
    soon = world.clock.now().timestamp() + 5
    world.guard.load({2: SavedPerson(BEN, Snapshot(session=SessionWrite(IN_A_CALL, 0.0, soon)))})
    world.hub.set_people([])
    await world.settle(200, step=10)
    assert world.teams.actions == []  # it lapsed in Teams by itself: nothing to clear
    assert world.forgotten == [2]
