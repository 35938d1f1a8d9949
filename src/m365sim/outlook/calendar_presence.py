"""Calendar-driven presence: meetings and out-of-office events set the Teams activity.

Teams derives `InAMeeting` and `OutOfOffice` from the calendar (graph.md 3.8 rule 5,
3.9 rule 9; concepts/cloud-communications-manage-presence-state.md). The simulator's
choices, since Microsoft does not spell them out:
- a non-cancelled, timed (not all-day) event with showAs `busy` or `tentative` is a
  meeting while it runs: activity `InAMeeting`;
- any non-cancelled event with showAs `oof`, all-day or not, is `OutOfOffice` while it
  runs, and it wins over an overlapping meeting (someone who is away does not attend);
- the presence part is told only when the calendar activity changes, through
  `PresenceService.set_calendar_activity(tenant_id, user_id, activity | None)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from m365sim.outlook.model import Instance, Mailbox

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

log = logging.getLogger("m365sim.outlook")

IN_A_MEETING = "InAMeeting"
OUT_OF_OFFICE = "OutOfOffice"
MEETING_SHOW_AS = ("busy", "tentative")
# How far ahead the next start or end is looked for; beyond it the loop just wakes again.
LOOKAHEAD = timedelta(days=7)
_INSTANT = timedelta(microseconds=1)

InstancesOf = Callable[[Mailbox, datetime, datetime], list[Instance]]


def activity_of(instances: Iterable[Instance], now: datetime) -> str | None:
    """The calendar activity at `now` given the instances that may be running then."""
    meeting = False
    for instance in instances:
        event = instance.event
        if event.is_cancelled or not instance.start <= now < instance.end:
            continue
        if event.show_as == "oof":
            return OUT_OF_OFFICE
        if event.show_as in MEETING_SHOW_AS and not event.is_all_day:
            meeting = True
    return IN_A_MEETING if meeting else None


class CalendarPresence:
    """Tracks each mailbox's calendar activity and tells the presence part when it changes."""

    def __init__(self, sim: Simulator, instances_of: InstancesOf) -> None:
        self.sim = sim
        self._instances_of = instances_of
        self._current: dict[tuple[str, str], str] = {}
        self._wake = asyncio.Event()

    def activity(self, tenant_id: str, user_id: str) -> str | None:
        """The calendar activity last reported for a user."""
        return self._current.get((tenant_id, user_id))

    def refresh(self, mailbox: Mailbox) -> None:
        """Recompute one mailbox's activity now and report a change."""
        now = self.sim.clock.now()
        running = self._instances_of(mailbox, now, now + _INSTANT)
        new = activity_of(running, now)
        key = (mailbox.tenant_id, mailbox.user_id)
        if self._current.get(key) == new:
            return
        if new is None:
            self._current.pop(key, None)
        else:
            self._current[key] = new
        self._report(mailbox.tenant_id, mailbox.user_id, new)

    def _report(self, tenant_id: str, user_id: str, activity: str | None) -> None:
        setter = getattr(self.sim.presence, "set_calendar_activity", None)
        if setter is None:
            log.debug("presence part has no set_calendar_activity; %s/%s is %s",
                      tenant_id, user_id, activity)
            return
        setter(tenant_id, user_id, activity)

    def changed(self, mailbox: Mailbox) -> None:
        """A mailbox's events changed: refresh it now and let the loop re-plan its sleep."""
        self.refresh(mailbox)
        self._wake.set()

    def next_boundary(self, mailboxes: Iterable[Mailbox]) -> datetime | None:
        """The earliest start or end of any instance after now (within the look-ahead)."""
        now = self.sim.clock.now()
        horizon = now + LOOKAHEAD
        earliest: datetime | None = None
        for mailbox in mailboxes:
            if not mailbox.events:
                continue
            for instance in self._instances_of(mailbox, now, horizon):
                for moment in (instance.start, instance.end):
                    if moment > now and (earliest is None or moment < earliest):
                        earliest = moment
        return earliest

    async def run(self, mailboxes: Callable[[], Iterable[Mailbox]]) -> None:
        """Wake at every start and end on the simulator's clock (or earlier on a change)."""
        while True:
            self._wake.clear()
            boxes = [m for m in mailboxes() if m.events or
                     (m.tenant_id, m.user_id) in self._current]
            for mailbox in boxes:
                self.refresh(mailbox)
            boundary = self.next_boundary(boxes)
            now = self.sim.clock.now()
            delay = (boundary - now).total_seconds() if boundary else LOOKAHEAD.total_seconds()
            await self._sleep_or_wake(max(delay, 0.0))

    async def _sleep_or_wake(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self.sim.clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
