"""What the presence API shows of the hub's state: known values, and null only for unknown."""

from __future__ import annotations

import asyncio

from m365pbx.core.mapping import DEFAULT_RULES, CompiledMapping
from m365pbx.core.policy import PolicyConfig, StatusAction, TeamsAction, TeamsReading
from m365pbx.core.presence import Activity, Availability, PbxPresence, PbxState, TeamsPresence
from m365pbx.pbx.base import PbxUser
from m365pbx.service.presence_view import person_presence
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
