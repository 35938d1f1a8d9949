"""After a restart: put saved state back, end calls the PBX no longer confirms, clear orphans.

- A person's saved snapshot is folded into the hub as soon as the directory knows them
  again (`merge`: whatever arrived since the restart wins).
- A saved call is provisional: unless the PBX reports that person's line state within
  `confirm_within` seconds of the restore, the call is taken to have ended while we were
  down and our session is cleared. The SIP connection's dialog subscription reports the
  current state at once; an API client re-sends it with its users after a restart.
- A session of ours whose person is no longer served (not in the directory after
  `orphan_grace` seconds, or removed from it) is cleared directly, so no "In a call"
  outlives us in Teams; once it has expired by itself there is nothing left to clear.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from m365pbx.clock import Clock
from m365pbx.core.mapping import Channel
from m365pbx.core.policy import LineReading, PersonState, SessionWrite, TeamsAction
from m365pbx.core.presence import LineState
from m365pbx.sync.hub import PresenceHub, RetryLater, TeamsSink
from m365pbx.sync.pbx_to_teams.snapshot import Snapshot, merge
from m365pbx.sync.people import Person
from m365pbx.sync.timers import TimerWheel

log = logging.getLogger(__name__)

# How long a restored call waits for the PBX to confirm it (see the module docstring).
CONFIRM_WITHIN = 60.0
# How long after start a saved session waits for its person to be known again.
ORPHAN_GRACE = 120.0
_CLEAR = TeamsAction(Channel.SESSION, None)


@dataclass(frozen=True, slots=True)
class SavedPerson:
    """A person as the store remembers them, with their saved snapshot."""

    person: Person
    snapshot: Snapshot


class RestartGuard:
    """Restores saved state into the hub and makes sure no session of ours is orphaned."""

    def __init__(
        self,
        hub: PresenceHub,
        teams: TeamsSink,
        clock: Clock,
        *,
        forget: Callable[[int], None] = lambda _pid: None,
        confirm_within: float = CONFIRM_WITHIN,
        orphan_grace: float = ORPHAN_GRACE,
        serves: Callable[[Person], bool] = lambda _person: True,
    ) -> None:
        self.hub = hub
        self.teams = teams
        self.clock = clock
        self.forget = forget
        # Several nodes: whether this node runs the person's tenant (holds its lease).
        self.serves = serves
        self.confirm_within = confirm_within
        self.orphan_grace = orphan_grace
        self.counters: Counter[str] = Counter()
        self.loaded = False
        self._saved: dict[int, SavedPerson] = {}
        self._known: dict[int, Person] = {}
        # Active sessions of ours, by person id: kept for people who leave the hub.
        self._sessions: dict[int, tuple[Person, SessionWrite]] = {}
        self._unconfirmed: dict[int, tuple[Person, LineReading]] = {}
        self._orphans: dict[int, tuple[Person, SessionWrite]] = {}
        self._failures: Counter[int] = Counter()
        self._confirm_timers = TimerWheel(clock, self._confirm_due)
        self._orphan_timers = TimerWheel(clock, self._orphan_due)
        self._tasks: set[asyncio.Task[None]] = set()

    def _now(self) -> float:
        return self.clock.now().timestamp()

    # --- input ------------------------------------------------------------------------------
    def load(self, saved: Mapping[int, SavedPerson]) -> None:
        """Take the saved people (once, at start) and restore those the hub already knows."""
        now = self._now()
        for pid, entry in saved.items():
            session = entry.snapshot.session
            if session is not None and session.active(now):
                self._sessions[pid] = (entry.person, session)
                self._orphan_timers.at(pid, now + self.orphan_grace)
        self._saved = dict(saved)
        self.loaded = True
        self.people_changed(self.hub.people())

    def reload(self, tenant: str, saved: Mapping[int, SavedPerson]) -> None:
        """Several nodes: this node took the tenant over; its people's state is what
        `saved` (read now) holds, not what was loaded at start. Restored as they join."""
        self.drop(tenant)
        now = self._now()
        for pid, entry in saved.items():
            session = entry.snapshot.session
            if session is not None and session.active(now):
                self._sessions[pid] = (entry.person, session)
                self._orphan_timers.at(pid, now + self.orphan_grace)
            self._saved[pid] = entry
        self.people_changed(self.hub.people())

    def drop(self, tenant: str) -> None:
        """Several nodes: forget the tenant's people (another node runs it now)."""
        for entries in (self._saved, self._sessions, self._unconfirmed, self._orphans):
            for pid in [pid for pid, entry in entries.items() if _person(entry).tenant == tenant]:
                del entries[pid]
                self._failures.pop(pid, None)

    def people_changed(self, people: list[Person]) -> None:
        """The hub's people changed: restore newcomers, clear the sessions of leavers."""
        self._known = {person.id: person for person in people}
        if not self.loaded:
            return
        now = self._now()
        for pid, person in self._known.items():
            entry = self._saved.pop(pid, None)
            if entry is not None:
                self._restore(person, entry.snapshot, now)
        for pid, (person, session) in list(self._sessions.items()):
            if pid not in self._known and pid not in self._saved:
                self._orphans[pid] = (person, session)
                self._orphan_timers.at(pid, now)

    def observe(self, person: Person, state: PersonState) -> None:
        """Follow a state change in the hub (which sessions of ours are active)."""
        session = state.session
        if session is not None and session.active(self._now()):
            self._sessions[person.id] = (person, session)
        else:
            self._sessions.pop(person.id, None)

    def _restore(self, person: Person, saved: Snapshot, now: float) -> None:
        current = self.hub.state_of(person.id)
        if current is None:
            return
        state = merge(current, saved)
        self.hub.restore(person.id, state)
        self.counters["restored"] += 1
        if saved.in_call and state.line is not None and state.line is not current.line:
            self._unconfirmed[person.id] = (person, state.line)
            self._confirm_timers.at(person.id, now + self.confirm_within)

    # --- timers -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Run the confirmation and orphan timers until cancelled."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._confirm_timers.run())
                group.create_task(self._orphan_timers.run())
        finally:
            for task in list(self._tasks):
                task.cancel()

    def _confirm_due(self, pid: int) -> None:
        entry = self._unconfirmed.pop(pid, None)
        state = self.hub.state_of(pid)
        if entry is None or state is None:
            return
        person, restored = entry
        if state.line is not restored:
            return  # the PBX reported since the restart
        # Just after the restored reading: any report the PBX makes later still wins, and the
        # old time means no hold-down (the call ended while we were down).
        ended = LineReading(LineState.IDLE, restored.at + 0.001)
        if self.hub.line_state(person.connection, person.key, ended):
            self.counters["unconfirmed_calls_ended"] += 1
            log.info("call of %s not confirmed by the PBX since the restart: ended",
                     person.key)

    def _orphan_due(self, pid: int) -> None:
        if pid in self._known:
            self._orphans.pop(pid, None)
            return
        entry = self._orphans.pop(pid, None)
        if entry is None:
            entry = self._sessions.get(pid) if pid in self._saved else None
        if entry is None:
            return
        if not self.serves(entry[0]):
            # Another node runs this person's tenant (several nodes): the session is its to
            # keep or clear. Looked at again later, in case this node takes the tenant over.
            self.counters["left_to_other_node"] += 1
            self._orphans.pop(pid, None)
            self._orphan_timers.at(pid, self._now() + self.orphan_grace)
            return
        if not entry[1].active(self._now()):
            self._gone(pid)  # expired by itself meanwhile: nothing to clear
            return
        self._orphans[pid] = entry
        task = asyncio.get_running_loop().create_task(self._clear(pid, *entry))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _clear(self, pid: int, person: Person, session: SessionWrite) -> None:
        try:
            await self.teams.apply(person, _CLEAR)
        except RetryLater as exc:
            self._orphan_timers.at(pid, self._now() + exc.delay)
            return
        except Exception:
            self._failures[pid] += 1
            delay = min(3600.0, 2.0 ** min(self._failures[pid], 12))
            log.exception("cannot clear the orphaned session of %s; again in %.0f s",
                          person.key, delay)
            self._orphan_timers.at(pid, self._now() + delay)
            return
        self.counters["orphans_cleared"] += 1
        log.info("cleared the session of %s, who is no longer served", person.key)
        self._gone(pid)

    def _gone(self, pid: int) -> None:
        self._orphans.pop(pid, None)
        self._sessions.pop(pid, None)
        self._saved.pop(pid, None)
        self._failures.pop(pid, None)
        self.forget(pid)


def _person(entry: SavedPerson | tuple[Person, object]) -> Person:
    return entry.person if isinstance(entry, SavedPerson) else entry[0]
