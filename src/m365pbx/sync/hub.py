"""The presence hub: one writer per person, in order, coalescing bursts without delay.

Readings from both sides are folded into each person's PersonState at once (stale ones
are refused there). A person whose state changed is queued; a worker takes the person,
asks `core.policy.decide` what to write, writes it, records it, and looks again if more
arrived meanwhile: the newest state goes out as soon as the person's writer is free, and
no two writes for one person ever overlap. Times the policy asks to be woken at (hold-
downs, session refresh, calendar) come back through a TimerWheel.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Protocol

from m365pbx.clock import Clock
from m365pbx.core.policy import (
    CalendarBlock,
    LineReading,
    PbxReading,
    PersonState,
    Plan,
    PolicyConfig,
    StatusAction,
    TeamsAction,
    TeamsReading,
    decide,
    observe_line,
    observe_pbx,
    observe_teams,
    record_pbx_written,
    record_preferred_cleared,
    record_preferred_set,
    record_session_cleared,
    record_session_set,
    record_status_written,
    set_calendar,
)
from m365pbx.core.presence import PbxPresence
from m365pbx.sync.people import Person
from m365pbx.sync.timers import TimerWheel

log = logging.getLogger(__name__)

URGENT, NORMAL = 0, 1


class PbxSink(Protocol):
    """Writes PBX presence for a person (through the person's PBX connection)."""

    async def show(self, person: Person, presence: PbxPresence, note: str) -> None:
        """Show `presence` with `note` for `person` in their PBX."""
        ...


class TeamsSink(Protocol):
    """Writes our presence session, the preferred presence or the status message in Teams."""

    async def apply(self, person: Person, action: TeamsAction | StatusAction) -> None:
        """Carry out one session, preferred-presence or status-message action for `person`."""
        ...


class RetryLater(Exception):
    """A sink could not write now; the hub tries again after `delay` seconds."""

    def __init__(self, delay: float, reason: str) -> None:
        super().__init__(reason)
        self.delay = delay


@dataclass
class _Slot:
    person: Person
    state: PersonState = field(default_factory=PersonState)
    queued: bool = False
    busy: bool = False
    dirty: bool = False
    failures: int = 0


class PresenceHub:
    """Holds every person's state and drives the policy for them."""

    def __init__(
        self,
        clock: Clock,
        pbx: PbxSink,
        teams: TeamsSink,
        config_for: Callable[[Person], PolicyConfig],
        *,
        workers: int = 16,
        teams_reader: Callable[[Person], Awaitable[TeamsReading]] | None = None,
        acts_for: Callable[[Person], bool] = lambda _person: True,
    ) -> None:
        self.clock = clock
        self.pbx = pbx
        self.teams = teams
        self.config_for = config_for
        # Reads a person's full Teams presence when the policy must know the status message.
        self.teams_reader = teams_reader
        # Several nodes: whether this node may write for the person now (their tenant's
        # lease); asked before each decision and each write (docs/cluster.md).
        self.acts_for = acts_for
        self.workers = workers
        self.counters: Counter[str] = Counter()
        self._slots: dict[int, _Slot] = {}
        self._by_teams_id: dict[str, list[int]] = {}
        self._by_pbx_key: dict[tuple[str, str], int] = {}
        self._queue: asyncio.PriorityQueue[tuple[int, int, int]] = asyncio.PriorityQueue()
        self._order = itertools.count()
        self._timers = TimerWheel(clock, lambda pid: self._enqueue(pid, NORMAL))
        self._listeners: list[Callable[[Person, PersonState], None]] = []
        self._people_listeners: list[Callable[[list[Person]], None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._in_flight = 0

    # --- people ---------------------------------------------------------------------------
    def set_people(self, people: Iterable[Person]) -> None:
        """Replace the set of people; the state of those who stay is kept."""
        new = {person.id: person for person in people}
        for pid in list(self._slots):
            if pid not in new:
                del self._slots[pid]
        for pid, person in new.items():
            slot = self._slots.get(pid)
            if slot is None:
                self._slots[pid] = _Slot(person)
            else:
                slot.person = person
        self._by_teams_id = {}
        self._by_pbx_key = {}
        for pid, slot in self._slots.items():
            self._by_teams_id.setdefault(slot.person.teams_user_id.lower(), []).append(pid)
            self._by_pbx_key[(slot.person.connection, slot.person.key)] = pid
        everyone = [slot.person for slot in self._slots.values()]
        for listener in self._people_listeners:
            listener(everyone)

    def on_people(self, listener: Callable[[list[Person]], None]) -> None:
        """Be told the whole set of people after every `set_people` (to restore saved state)."""
        self._people_listeners.append(listener)

    def people(self) -> list[Person]:
        """Everyone the hub knows."""
        return [slot.person for slot in self._slots.values()]

    def state_of(self, person_id: int) -> PersonState | None:
        """A person's current state, if known."""
        slot = self._slots.get(person_id)
        return None if slot is None else slot.state

    def restore(self, person_id: int, state: PersonState) -> None:
        """Put back a state loaded from the store after a restart, and look at it."""
        slot = self._slots.get(person_id)
        if slot is not None:
            slot.state = state
            self._enqueue(person_id, NORMAL)

    def current_teams(self, teams_user_id: str) -> TeamsReading | None:
        """The newest Teams reading held for a Teams user, if any."""
        for pid in self._by_teams_id.get(teams_user_id.lower(), []):
            teams = self._slots[pid].state.teams
            if teams is not None:
                return teams
        return None

    def teams_user_ids(self) -> list[str]:
        """Every Teams user id someone is matched to."""
        return [self._slots[pids[0]].person.teams_user_id for pids in self._by_teams_id.values()]

    def person_by_pbx_key(self, connection: str, key: str) -> Person | None:
        """The person a PBX connection calls `key`."""
        pid = self._by_pbx_key.get((connection, key))
        return None if pid is None else self._slots[pid].person

    @property
    def timers(self) -> TimerWheel:
        """The wake-ups the policy asked for (calendar starts and ends among them)."""
        return self._timers

    def listen(self, listener: Callable[[Person, PersonState], None]) -> None:
        """Be told of every state change (for the presence API's stream and persistence)."""
        self._listeners.append(listener)

    # --- input ----------------------------------------------------------------------------
    def teams_reading(self, teams_user_id: str, reading: TeamsReading) -> int:
        """Fold a Teams reading into everyone matched to that user; return how many took it."""
        now = reading.at
        taken = 0
        for pid in self._by_teams_id.get(teams_user_id.lower(), []):
            slot = self._slots[pid]
            state, accepted = observe_teams(slot.state, reading, now,
                                            self.config_for(slot.person))
            if accepted:
                taken += 1
                self._changed(slot, state, NORMAL)
            else:
                self.counters["stale_teams_readings"] += 1
        if not self._by_teams_id.get(teams_user_id.lower()):
            self.counters["teams_readings_for_unknown_users"] += 1
        return taken

    def pbx_presence(self, connection: str, key: str, reading: PbxReading) -> bool:
        """Fold a PBX presence reading in; False if the person is unknown or it is stale."""
        pid = self._by_pbx_key.get((connection, key))
        if pid is None:
            self.counters["pbx_events_for_unknown_users"] += 1
            return False
        slot = self._slots[pid]
        state, accepted = observe_pbx(slot.state, reading, reading.at,
                                      self.config_for(slot.person))
        if accepted:
            self._changed(slot, state, NORMAL)
        else:
            self.counters["stale_pbx_readings"] += 1
        return accepted

    def line_state(self, connection: str, key: str, reading: LineReading) -> bool:
        """Fold a line-state reading in (calls go first); False if unknown or stale."""
        pid = self._by_pbx_key.get((connection, key))
        if pid is None:
            self.counters["pbx_events_for_unknown_users"] += 1
            return False
        slot = self._slots[pid]
        state, accepted = observe_line(slot.state, reading)
        if accepted:
            self._changed(slot, state, URGENT)
        else:
            self.counters["stale_line_readings"] += 1
        return accepted

    def calendar(self, person_id: int, blocks: tuple[CalendarBlock, ...]) -> bool:
        """Replace a person's calendar blocks; False if the person is unknown or nothing changed.

        Each block's start and end come back as the policy's wake-up times (TimerWheel).
        """
        slot = self._slots.get(person_id)
        if slot is None:
            return False
        state = set_calendar(slot.state, blocks)
        if state.calendar == slot.state.calendar:
            return False
        self._changed(slot, state, NORMAL)
        return True

    def poke(self, person_id: int) -> None:
        """Look at a person again (after a restart, a reconnect, or to re-assert the truth)."""
        self._enqueue(person_id, NORMAL)

    def _changed(self, slot: _Slot, state: PersonState, priority: int) -> None:
        slot.state = state
        for listener in self._listeners:
            listener(slot.person, state)
        self._enqueue(slot.person.id, priority)

    def _enqueue(self, person_id: int, priority: int) -> None:
        slot = self._slots.get(person_id)
        if slot is None:
            return
        if slot.busy:
            slot.dirty = True
            return
        if slot.queued:
            return
        slot.queued = True
        self._idle.clear()
        self._queue.put_nowait((priority, next(self._order), person_id))

    # --- work -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Run the workers and the timers until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._timers.run())
            for _ in range(self.workers):
                group.create_task(self._worker())

    async def settled(self) -> None:
        """Wait until no person is queued, being written, or due on a timer right now."""
        while True:
            due = self._timers.next_due()
            timer_due = due is not None and due <= self.clock.now().timestamp()
            if self._queue.empty() and self._in_flight == 0 and not timer_due:
                return
            if timer_due:
                await asyncio.sleep(0)
            else:
                self._idle.clear()
                await self._idle.wait()

    async def _worker(self) -> None:
        while True:
            _, _, pid = await self._queue.get()
            slot = self._slots.get(pid)
            if slot is None:
                self._mark_idle()
                continue
            slot.queued = False
            slot.busy = True
            self._in_flight += 1
            try:
                await self._serve(slot)
            finally:
                slot.busy = False
                self._in_flight -= 1
                if slot.dirty:
                    slot.dirty = False
                    self._enqueue(pid, URGENT)
                self._mark_idle()

    def _mark_idle(self) -> None:
        if self._queue.empty() and self._in_flight == 0:
            self._idle.set()

    async def _serve(self, slot: _Slot) -> None:
        if not self.acts_for(slot.person):
            # Another node runs the person's tenant: its to decide (docs/cluster.md).
            self.counters["not_acting"] += 1
            return
        config = self.config_for(slot.person)
        now = self.clock.now().timestamp()
        plan = decide(slot.state, now, config)
        if plan.wake_at is not None:
            self._timers.at(slot.person.id, plan.wake_at)
        if plan.read_teams and self.teams_reader is None:
            # Without a reader a status message or preferred presence waiting for a read is
            # never written: counted, so it shows.
            self.counters["teams_reads_unavailable"] += 1
            plan = replace(plan, read_teams=False)
        if plan.empty:
            return
        try:
            writes = replace(plan, read_teams=False)
            if not writes.empty:
                await self._execute(slot, writes, config)
            if plan.read_teams:
                await self._read_teams(slot)
            slot.failures = 0
        except RetryLater as exc:
            slot.failures += 1
            self.counters["writes_deferred"] += 1
            self._timers.at(slot.person.id, self.clock.now().timestamp() + exc.delay)
            log.info("write deferred", extra={"person": slot.person.key, "reason": str(exc)})
        except Exception:
            slot.failures += 1
            self.counters["writes_failed"] += 1
            delay = min(300.0, 2.0 ** min(slot.failures, 8))
            self._timers.at(slot.person.id, self.clock.now().timestamp() + delay)
            log.exception("write failed", extra={"person": slot.person.key})

    def _still_acting(self, person: Person) -> None:
        """Before each write: the lease may have passed its deadline while we awaited."""
        if not self.acts_for(person):
            self.counters["not_acting"] += 1
            raise RetryLater(30.0, "this node no longer runs the person's tenant")

    async def _read_teams(self, slot: _Slot) -> None:
        assert self.teams_reader is not None
        reading = await self.teams_reader(slot.person)
        self.counters["teams_reads"] += 1
        if not self.teams_reading(slot.person.teams_user_id, reading):
            # Refused as older than what we hold: asking again at once would loop.
            raise RetryLater(30.0, "the presence read back was older than the last reading")

    async def _execute(self, slot: _Slot, plan: Plan, config: PolicyConfig) -> None:
        person = slot.person
        # Calls first: the session write is what a caller notices (issue 14).
        if plan.session is not None:
            self._still_acting(person)
            await self.teams.apply(person, plan.session)
            now = self.clock.now().timestamp()
            if plan.session.presence is None:
                slot.state = record_session_cleared(slot.state, now)
            else:
                lifetime = plan.session.lifetime or config.default_session_lifetime
                slot.state = record_session_set(slot.state, plan.session.presence, lifetime,
                                                now)
            self.counters["teams_session_writes"] += 1
        if plan.pbx is not None:
            self._still_acting(person)
            await self.pbx.show(person, plan.pbx.presence, plan.pbx.note)
            slot.state = record_pbx_written(slot.state, plan.pbx.presence, plan.pbx.note,
                                            self.clock.now().timestamp())
            self.counters["pbx_writes"] += 1
        if plan.preferred is not None:
            self._still_acting(person)
            await self.teams.apply(person, plan.preferred)
            now = self.clock.now().timestamp()
            if plan.preferred.presence is None:
                slot.state = record_preferred_cleared(slot.state)
            else:
                slot.state = record_preferred_set(slot.state, plan.preferred.presence,
                                                  plan.preferred.lifetime, now)
            self.counters["teams_preferred_writes"] += 1
        if plan.status is not None:
            self._still_acting(person)
            await self.teams.apply(person, plan.status)
            slot.state = record_status_written(slot.state, plan.status.text,
                                               plan.status.lifetime,
                                               self.clock.now().timestamp(), config)
            self.counters["teams_status_writes"] += 1
        for listener in self._listeners:
            listener(person, slot.state)
        # Recorded writes may make a new plan due (e.g. the next refresh time).
        slot.dirty = True
