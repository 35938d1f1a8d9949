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
import heapq
import itertools
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

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
    """Tracks each mailbox's calendar activity and tells the presence part when it changes.

    Each mailbox has one planned wake-up (its next start or end within the look-ahead) in a
    heap, so a boundary costs one mailbox's work, not a scan of every calendar. Every
    look-ahead period all mailboxes are planned afresh, which finds series occurrences and
    far-off events that were beyond the previous look-ahead.
    """

    def __init__(self, sim: Simulator, instances_of: InstancesOf) -> None:
        self.sim = sim
        self._instances_of = instances_of
        self._current: dict[tuple[str, str], str] = {}
        self._planned: dict[tuple[str, str], datetime] = {}
        self._heap: list[tuple[datetime, int, Mailbox]] = []
        self._order = itertools.count()
        self._task: asyncio.Task[Any] | None = None
        self._wake_at: datetime | None = None
        self._interrupting = False

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

    def _plan(self, mailbox: Mailbox) -> datetime | None:
        """Put the mailbox's next boundary in the heap (replacing an older plan)."""
        key = (mailbox.tenant_id, mailbox.user_id)
        boundary = self.next_boundary(mailbox)
        if boundary is None:
            self._planned.pop(key, None)
        elif self._planned.get(key) != boundary:
            self._planned[key] = boundary
            heapq.heappush(self._heap, (boundary, next(self._order), mailbox))
        return boundary

    def changed(self, mailbox: Mailbox) -> None:
        """A mailbox's events changed: refresh it now, and wake the loop early when the
        change brings a start or end before its planned wake-up."""
        self.refresh(mailbox)
        boundary = self._plan(mailbox)
        if self._task is None or self._interrupting or boundary is None:
            return
        if self._wake_at is None or boundary < self._wake_at:
            self._interrupting = True
            self._task.cancel()

    def next_boundary(self, mailbox: Mailbox) -> datetime | None:
        """The mailbox's earliest start or end after now (within the look-ahead)."""
        if not mailbox.events:
            return None
        now = self.sim.clock.now()
        earliest: datetime | None = None
        for instance in self._instances_of(mailbox, now, now + LOOKAHEAD):
            for moment in (instance.start, instance.end):
                if moment > now and (earliest is None or moment < earliest):
                    earliest = moment
        return earliest

    def _due(self, now: datetime) -> list[Mailbox]:
        """Pop the mailboxes whose planned boundary has come (ignoring outdated plans)."""
        due = []
        while self._heap and self._heap[0][0] <= now:
            when, _, mailbox = heapq.heappop(self._heap)
            key = (mailbox.tenant_id, mailbox.user_id)
            if self._planned.get(key) == when:
                del self._planned[key]
                due.append(mailbox)
        return due

    def _next_planned(self) -> datetime | None:
        while self._heap:
            when, _, mailbox = self._heap[0]
            if self._planned.get((mailbox.tenant_id, mailbox.user_id)) == when:
                return when
            heapq.heappop(self._heap)
        return None

    async def run(self, mailboxes: Callable[[], Iterable[Mailbox]]) -> None:
        """Wake at every start and end on the simulator's clock (or earlier on a change)."""
        # The loop awaits the clock directly (no helper task), so that it re-plans within
        # the few scheduler turns VirtualClock.advance grants each sleeper it wakes.
        me = asyncio.current_task()
        if me is None:
            raise RuntimeError("CalendarPresence.run must run inside an asyncio task")
        self._task = me
        rescan_at: datetime | None = None
        try:
            while True:
                now = self.sim.clock.now()
                if rescan_at is None or now >= rescan_at:
                    rescan_at = now + LOOKAHEAD
                    for mailbox in mailboxes():
                        if mailbox.events or (mailbox.tenant_id, mailbox.user_id) in \
                                self._current:
                            self.refresh(mailbox)
                            self._plan(mailbox)
                for mailbox in self._due(now):
                    self.refresh(mailbox)
                    self._plan(mailbox)
                planned = self._next_planned()
                self._wake_at = min(planned, rescan_at) if planned else rescan_at
                try:
                    await self.sim.clock.sleep(max((self._wake_at - now).total_seconds(), 0.0))
                except asyncio.CancelledError:
                    if not self._interrupting:
                        raise
                    self._interrupting = False
                    # Our own early wake-up: forget it; a real cancellation still counts.
                    if me.uncancel() > 0:
                        raise
        finally:
            self._task = None
            self._wake_at = None
