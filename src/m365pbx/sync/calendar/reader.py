"""Reading the calendars of one tenant's people ahead of time, again every poll interval.

Each Teams user whose person sits on a connection with the calendar switched on is read
through calendarView for the coming window; the events become CalendarBlocks in the hub,
whose policy returns each start and end as a wake-up time: the PBX shows a meeting at the
second it starts however late the read was, as long as it was read before. A new person is
read at once; everyone again every `interval` (moves and cancellations show within it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from m365pbx.clock import Clock
from m365pbx.core.calendar import (
    AutomaticReplies,
    CalendarEvent,
    CalendarRules,
    automatic_reply_event,
    select_blocks,
)
from m365pbx.core.policy.state import CalendarBlock
from m365pbx.graph.calendar import automatic_replies, calendar_view
from m365pbx.graph.client import GraphClient
from m365pbx.graph.errors import Forbidden, M365Error
from m365pbx.sync.hub import PresenceHub
from m365pbx.sync.people import Person

log = logging.getLogger(__name__)

# With change notifications flowing for a person, their calendar is read again only this
# often (a notification reads it at once; the daily read repairs what was lost).
COVERED_INTERVAL = 86400.0
# A failed read is tried again this soon (the next regular read may be minutes away).
RETRY_AFTER = 60.0
# Reads in flight at once per tenant. Outlook allows 4 concurrent requests per app and
# mailbox (concepts/throttling-limits.md); ours each go to a different mailbox, so this only
# bounds the burst: at ~150 ms a read, 32 read 50,000 calendars in about 4 minutes.
CONCURRENT_READS = 32
# Reads due this soon are made with those due now: each person's next read is set when
# their read ends, so 50,000 of them would otherwise wake the loop 50,000 times a round.
READ_SLACK = 15.0


class KeptBlocks(Protocol):
    """Where the blocks are kept across restarts (the store, filled in by service/)."""

    async def load(self, person_ids: Collection[int]) -> dict[int, tuple[CalendarBlock, ...]]:
        """The kept blocks of these people."""
        ...

    def changed(self) -> None:
        """Blocks changed: take them (`CalendarReader.take_unsaved`) and keep them soon."""
        ...


@dataclass(frozen=True, slots=True)
class CalendarPlan:
    """What one connection asks of its people's calendars."""

    rules: CalendarRules
    window: float  # seconds ahead
    interval: float  # seconds between reads


@dataclass
class CalendarStatus:
    """What /healthz shows of a tenant's calendar reading."""

    state: str = "starting"
    since: datetime | None = None
    last_error: str | None = None
    people: int = 0
    reads: int = 0
    failed_reads: int = 0
    blocks: int = 0
    restored: int = 0


class CalendarReader:
    """Keeps every calendar-enabled person's blocks in the hub current."""

    def __init__(self, tenant: str, client: GraphClient | None, hub: PresenceHub, clock: Clock,
                 plan_for: Callable[[Person], CalendarPlan | None], *,
                 unavailable: str | None = None) -> None:
        self.tenant = tenant
        self.client = client
        self.hub = hub
        self.clock = clock
        self.plan_for = plan_for
        # Why calendars cannot be read at all (no credential with calendars.read), if so.
        self.unavailable = unavailable
        self.status = CalendarStatus(since=clock.now())
        self._next_read: dict[str, float] = {}
        self._failing: dict[str, str] = {}
        self._again: set[str] = set()
        self._wake = asyncio.Event()
        self._followed: dict[str, list[tuple[Person, CalendarPlan]]] | None = None
        self._blocks: dict[int, int] = {}
        # Where automatic replies are read: each part kept to merge with the other's next read.
        self._event_blocks: dict[int, tuple[CalendarBlock, ...]] = {}
        self._reply_blocks: dict[int, tuple[CalendarBlock, ...]] = {}
        self._calendar_due: dict[str, float] = {}
        hub.on_people(self._people_changed)
        # Whether change notifications flow for a (lower-case) user id (subscriptions.py).
        self.covered: Callable[[str], bool] = lambda _uid: False
        # The store's copy of the blocks: loaded for each newly followed person before their
        # first read, so a restart misses no start while the first round of reads lasts.
        self.kept: KeptBlocks | None = None
        self._restored_ids: set[int] = set()
        self._unsaved: dict[int, tuple[CalendarBlock, ...]] = {}

    def take_unsaved(self) -> dict[int, tuple[CalendarBlock, ...]]:
        """The blocks changed since the last call, by person id (for the keeper to save)."""
        unsaved, self._unsaved = self._unsaved, {}
        return unsaved

    def unsaved_again(self, blocks: dict[int, tuple[CalendarBlock, ...]]) -> None:
        """Blocks the keeper could not save: kept for its next try unless newer ones came."""
        for person_id, items in blocks.items():
            self._unsaved.setdefault(person_id, items)

    def health(self) -> dict[str, object]:
        """What /healthz shows: state, since, the last error and the people followed."""
        status = self.status
        return {"state": status.state,
                "since": None if status.since is None else status.since.isoformat(),
                "last_error": status.last_error, "people": status.people,
                "reads": status.reads, "failed_reads": status.failed_reads,
                "blocks_ahead": status.blocks, "restored": status.restored}

    def read_soon(self) -> None:
        """Read everyone again now (a change notification, "Sync now")."""
        self._next_read.clear()
        self._wake.set()

    def read_now(self, uid: str) -> None:
        """Read one person's calendar again at once (a change notification said so)."""
        if uid in self._next_read:
            self._next_read[uid] = 0.0
            self._again.add(uid)  # a read in flight may have begun before the change
            self._wake.set()

    def _set_state(self, state: str, error: str | None = None) -> None:
        if state != self.status.state:
            self.status.since = self.clock.now()
        self.status.state = state
        self.status.last_error = error

    def _people_changed(self, _people: list[Person]) -> None:
        self._followed = None
        self._wake.set()

    def followed(self) -> dict[str, list[tuple[Person, CalendarPlan]]]:
        """The people to follow now, by Teams user id, each with their connection's plan."""
        if self._followed is not None:
            return self._followed
        users: dict[str, list[tuple[Person, CalendarPlan]]] = {}
        for person in self.hub.people():
            if person.tenant != self.tenant:
                continue
            plan = self.plan_for(person)
            if plan is not None:
                users.setdefault(person.teams_user_id.lower(), []).append((person, plan))
        self._followed = users
        ids = {person.id for entries in users.values() for person, _ in entries}
        self._blocks = {pid: count for pid, count in self._blocks.items() if pid in ids}
        for kept in (self._event_blocks, self._reply_blocks):
            for pid in set(kept) - ids:
                del kept[pid]
        return users

    async def run(self) -> None:
        """Read the calendars as they come due, until cancelled."""
        if self.unavailable is not None:
            self._set_state("off", self.unavailable)
            log.warning("calendar → PBX is off for tenant %s: %s", self.tenant, self.unavailable)
            await asyncio.Event().wait()
        while True:
            self._wake.clear()
            users = self.followed()
            self.status.people = sum(len(entries) for entries in users.values())
            for gone in set(self._next_read) - set(users):
                del self._next_read[gone]
                self._calendar_due.pop(gone, None)
                self._failing.pop(gone, None)
                self._again.discard(gone)
            if self.kept is not None:
                await self._restore(users)
            now = self.clock.now().timestamp()
            due = [uid for uid in users if self._next_read.get(uid, 0.0) <= now + READ_SLACK]
            if due:
                await self._read_all(due, users)
                self._report()
                continue
            if not users:
                self._set_state("idle: nobody matched on a connection with calendar on")
            wake = min(self._next_read.values(), default=now + 3600.0)
            sleeper = asyncio.ensure_future(self.clock.sleep(wake - now))
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                woken.cancel()

    async def _restore(self, users: dict[str, list[tuple[Person, CalendarPlan]]]) -> None:
        assert self.kept is not None
        fresh = {person.id for entries in users.values() for person, _ in entries} \
            - self._restored_ids
        if not fresh:
            return
        self._restored_ids |= fresh
        try:
            kept = await self.kept.load(fresh)
        except Exception as exc:  # the reads that follow rebuild everything anyway
            log.warning("calendar blocks of tenant %s not restored: %s", self.tenant, exc)
            return
        now = self.clock.now().timestamp()
        for person_id, blocks in kept.items():
            if person_id in self._blocks:
                continue  # read since: the read is newer
            ahead = tuple(block for block in blocks if block.end > now)
            if ahead and self.hub.calendar(person_id, ahead):
                self._blocks[person_id] = len(ahead)
                self.status.restored += 1

    async def _read_all(self, due: list[str],
                        users: dict[str, list[tuple[Person, CalendarPlan]]]) -> None:
        # A few workers over one list: 50,000 waiting coroutines would hold ~100 MB.
        pending = iter(due)

        async def worker() -> None:
            for uid in pending:
                await self._read(uid, users[uid])

        await asyncio.gather(*(worker() for _ in range(min(CONCURRENT_READS, len(due)))))

    def _report(self) -> None:
        self.status.blocks = sum(self._blocks.values())
        if self._failing:
            uid, reason = next(iter(self._failing.items()))
            more = len(self._failing) - 1
            suffix = f" (and {more} more)" if more else ""
            self._set_state("failing", f"calendar of {uid}: {reason}{suffix}")
        else:
            self._set_state("following")

    async def _read(self, uid: str, entries: list[tuple[Person, CalendarPlan]]) -> None:
        assert self.client is not None
        window = max(plan.window for _, plan in entries)
        interval = min(plan.interval for _, plan in entries)
        calendar_interval = max(interval, COVERED_INTERVAL) if self.covered(uid) else interval
        wants_replies = any(plan.rules.automatic_replies for _, plan in entries)
        start = self.clock.now()
        now = start.timestamp()
        read_calendar = (not wants_replies or uid in self._again
                         or self._calendar_due.get(uid, 0.0) <= now + READ_SLACK)
        self._again.discard(uid)
        user_id = entries[0][0].teams_user_id
        events: list[CalendarEvent] | None = None
        replies: AutomaticReplies | None = None
        failure = None
        try:
            if read_calendar:
                events = await calendar_view(self.client, user_id, start,
                                             start + timedelta(seconds=window))
                self._calendar_due[uid] = now + calendar_interval
            if wants_replies:
                try:
                    replies = await automatic_replies(self.client, user_id)
                except Forbidden as exc:
                    failure = (f"automatic replies: {exc} (is MailboxSettings.Read granted to "
                               "the app?)")
                except M365Error as exc:
                    failure = f"automatic replies: {exc}"
        except M365Error as exc:
            failure = str(exc) if not isinstance(exc, Forbidden) else (
                f"{exc} (is Calendars.Read granted to the app?)")
        if events is not None or replies is not None:
            self._apply(events, replies, entries, now)
        if failure is not None:
            self.status.failed_reads += 1
            self._failing[uid] = failure
            self._next_read[uid] = now + RETRY_AFTER
            log.warning("calendar read failed", extra={"user": uid, "reason": failure})
            return
        self.status.reads += 1
        self._failing.pop(uid, None)
        self._next_read[uid] = (0.0 if uid in self._again else self.clock.now().timestamp()
                                + (interval if wants_replies else calendar_interval))

    def _apply(self, events: list[CalendarEvent] | None, replies: AutomaticReplies | None,
               entries: list[tuple[Person, CalendarPlan]], now: float) -> None:
        for person, plan in entries:
            to_pbx = self.hub.config_for(person).mapping.calendar_to_pbx
            pid = person.id
            if not plan.rules.automatic_replies:
                if events is None:
                    continue
                blocks = tuple(block for block in select_blocks(events, plan.rules, to_pbx)
                               if block.end > now)
            else:
                if events is not None:
                    self._event_blocks[pid] = select_blocks(events, plan.rules, to_pbx)
                if replies is not None:
                    reply = automatic_reply_event(replies, now, plan.window)
                    self._reply_blocks[pid] = (() if reply is None
                                               else select_blocks([reply], plan.rules, to_pbx))
                merged = self._event_blocks.get(pid, ()) + self._reply_blocks.get(pid, ())
                blocks = tuple(sorted((block for block in merged if block.end > now),
                                      key=lambda block: (block.start, block.end)))
            self._blocks[pid] = len(blocks)
            if self.hub.calendar(pid, blocks) and self.kept is not None:
                self._unsaved[pid] = blocks
                self.kept.changed()
