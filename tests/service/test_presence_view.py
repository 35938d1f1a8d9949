"""What the presence API shows of the hub's state: known values, and null only for unknown."""

from __future__ import annotations

import asyncio

from m365pbx.core.mapping import DEFAULT_RULES, CompiledMapping
from m365pbx.core.policy import PolicyConfig, StatusAction, TeamsAction, TeamsReading
from m365pbx.core.presence import Activity, Availability, PbxPresence, PbxState, TeamsPresence
from m365pbx.pbx.api.view import PersonPresence
from m365pbx.pbx.base import PbxUser
from m365pbx.service.presence_view import HubPresenceView, person_presence
from m365pbx.sync.hub import PresenceHub
from m365pbx.sync.people import Person
from m365sim.clock import VirtualClock

CONFIG = PolicyConfig(mapping=CompiledMapping(DEFAULT_RULES))
AVAILABLE = TeamsPresence(Availability.AVAILABLE, Activity.AVAILABLE)


class Nowhere:
    """A side that accepts every write."""

    async def show(self, person: Person, presence: PbxPresence, note: str) -> None:
        """Accept a PBX write."""

    async def apply(self, person: Person, action: TeamsAction | StatusAction) -> None:
        """Accept a Teams write."""


async def test_an_available_person_shows_online_and_an_unread_one_null() -> None:
    clock = VirtualClock()
    anna = Person(id=1, connection="pbx", pbx_user=PbxUser("anna"), teams_user_id="user-1")
    ben = Person(id=2, connection="pbx", pbx_user=PbxUser("ben"), teams_user_id="user-2")
    hub = PresenceHub(clock, Nowhere(), Nowhere(), lambda _p: CONFIG, workers=2)
    hub.set_people([anna, ben])
    task = asyncio.create_task(hub.run())
    try:
        hub.teams_reading("user-1", TeamsReading(AVAILABLE, clock.now().timestamp(), "1"))
        await hub.settled()
        # Available needs no write to the PBX, yet what the PBX shows is known: online.
        assert person_presence(anna, hub).pbx == PbxState(PbxPresence.ONLINE, "")
        # Nothing read from Teams yet: unknown, which the API writes as null.
        assert person_presence(ben, hub).pbx is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_person_another_node_runs_is_shown_as_that_node_shows_them() -> None:
    # Several nodes: the hub here may still hold a tenant's people after losing it; what
    # the API shows of them is the running node's, until this node runs them again.
    clock = VirtualClock()
    anna = Person(id=1, connection="pbx", pbx_user=PbxUser("anna"), teams_user_id="user-1")
    hub = PresenceHub(clock, Nowhere(), Nowhere(), lambda _p: CONFIG, workers=2)
    hub.set_people([anna])
    view = HubPresenceView(hub)
    changes = view.changes()
    elsewhere = PersonPresence(key="anna", connection="pbx", person_id=1,
                               pbx=PbxState(PbxPresence.DND, "workshop"))
    carl = PersonPresence(key="carl", connection="pbx", pbx=PbxState(PbxPresence.AWAY))
    view.mirror(elsewhere)
    view.mirror(carl)
    assert await anext(changes) == elsewhere  # streamed like any change
    view.refresh()  # the hub's people: not over the mirrored ones, nor removing carl
    assert view.people() == [elsewhere, carl]
    task = asyncio.create_task(hub.run())
    try:
        hub.teams_reading("user-1", TeamsReading(AVAILABLE, clock.now().timestamp(), "1"))
        await hub.settled()
        assert view.people()[0] == elsewhere
        view.unmirror("pbx", "anna")  # this node runs anna again
        view.refresh()
        assert view.people()[0].pbx == PbxState(PbxPresence.ONLINE, "")
        view.unmirror("pbx", "carl")  # no longer followed by the running node
        assert [p.key for p in view.people()] == ["anna"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        view.close()

