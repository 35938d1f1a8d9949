"""One person's page: the calendar events the PBX shows, and their last shown changes."""

from __future__ import annotations

import asyncio

from m365pbx.core.policy import CalendarBlock, TeamsReading
from m365pbx.core.presence import Activity, Availability, PbxPresence, TeamsPresence
from m365pbx.pbx.base import PbxUser
from m365pbx.service.person_explain import explain_person
from m365pbx.service.presence_view import RECENT, HubPresenceView
from m365pbx.sync.hub import PresenceHub
from m365pbx.sync.people import Person
from m365sim.clock import VirtualClock
from tests.service.test_presence_view import CONFIG, Nowhere

BUSY = TeamsPresence(Availability.BUSY, Activity.BUSY)
AVAILABLE = TeamsPresence(Availability.AVAILABLE, Activity.AVAILABLE)


async def test_calendar_events_and_the_last_changes_of_one_person() -> None:
    clock = VirtualClock()
    anna = Person(id=1, connection="pbx", pbx_user=PbxUser("anna"), teams_user_id="user-1")
    ben = Person(id=2, connection="pbx", pbx_user=PbxUser("ben"), teams_user_id="user-2")
    hub = PresenceHub(clock, Nowhere(), Nowhere(), lambda _p: CONFIG, workers=2)
    view = HubPresenceView(hub)
    hub.set_people([anna, ben])
    task = asyncio.create_task(hub.run())
    try:
        now = clock.now().timestamp()
        hub.calendar(1, (CalendarBlock(PbxPresence.MEETING, now + 3600, now + 7200,
                                       "Budget <review>"),))
        hub.teams_reading("user-1", TeamsReading(AVAILABLE, now, "1"))
        await hub.settled()
        await clock.advance(60)
        hub.teams_reading("user-1", TeamsReading(BUSY, clock.now().timestamp(), "2"))
        hub.teams_reading("user-2", TeamsReading(BUSY, clock.now().timestamp(), "3"))
        await hub.settled()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    why = explain_person(hub, lambda _p: CONFIG, 1)
    assert why is not None
    [(start, end, presence, subject)] = why.calendar
    assert (end - start).total_seconds() == 3600
    assert (presence, subject) == ("meeting", "Budget <review>")
    changes = view.recent_changes(1)
    # Newest first: Teams went Busy, then the PBX followed.
    assert [(c.teams, c.pbx) for c in changes][:3] == [
        ("Busy / Busy", "busy"), ("Busy / Busy", "online"),
        ("Available / Available", "online")]
    assert changes[0].at > changes[-1].at
    assert all(c.person_id == 1 for c in changes)
    assert [(c.teams, c.pbx) for c in view.recent_changes(2)][:2] == [
        ("Busy / Busy", "busy"), ("Busy / Busy", "online")]
    assert RECENT >= 1000
