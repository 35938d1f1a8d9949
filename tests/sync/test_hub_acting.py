"""The presence hub on several nodes: it decides and writes only for people it acts for
(their tenant's lease held here); readings for the others are folded in, nothing is written."""

from __future__ import annotations

import asyncio

from m365pbx.core.policy import LineReading
from m365pbx.core.presence import Activity, Availability, LineState, PbxPresence, TeamsPresence
from m365pbx.sync.hub import PresenceHub
from m365sim.clock import VirtualClock
from tests.sync.test_hub import BUSY, CONFIG, RecordingPbx, RecordingTeams, person, reading

IN_A_CALL = TeamsPresence(Availability.BUSY, Activity.IN_A_CALL)


async def test_nothing_is_written_for_people_this_node_does_not_act_for() -> None:
    clock = VirtualClock()
    pbx, teams = RecordingPbx(), RecordingTeams()
    acting = {1: False, 2: True}
    hub = PresenceHub(clock, pbx, teams, lambda _p: CONFIG, workers=4,
                      acts_for=lambda p: acting[p.id])
    hub.set_people([person(1, "anna"), person(2, "ben")])
    task = asyncio.create_task(hub.run())
    try:
        now = clock.now().timestamp()
        hub.line_state("pbx", "anna", LineReading(LineState.ON_THE_PHONE, now, 1))
        hub.teams_reading("user-1", reading(clock, BUSY, 1))
        hub.line_state("pbx", "ben", LineReading(LineState.ON_THE_PHONE, now, 1))
        await hub.settled()
        # Ben's call reaches Teams; Anna's reaches neither Teams nor the PBX from here.
        assert [(key, action.presence) for key, action in teams.actions] == [("ben", IN_A_CALL)]
        assert pbx.shown == []
        assert hub.counters["not_acting"] >= 1
        state = hub.state_of(1)
        assert state is not None and state.session is None  # nothing recorded as written

        # The node runs Anna's tenant (again): her state is decided and written.
        acting[1] = True
        hub.poke(1)
        await hub.settled()
        assert ("anna", IN_A_CALL) in [(key, a.presence) for key, a in teams.actions]
        assert pbx.shown == [("anna", PbxPresence.BUSY)]
    finally:
        task.cancel()
