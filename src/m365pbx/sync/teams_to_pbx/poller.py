"""Polling presence with getPresencesByUserId: the mode without a public URL, and the
reconciliation that repairs lost notifications in hybrid mode (design.md rule 6).

In hybrid mode the people whose notifications are not flowing (their service account is
failing, or no account can take them) are polled between reconciliation rounds at the
polling-mode pace, so their presence keeps reaching the PBX meanwhile.

Graph allows 1,500 presence requests per 30 s per app and tenant, and a getPresencesByUserId
call counts as one request whatever the number of ids (up to 650) it names. The poller plans
to use at most a fifth of that budget (the rest is for read-backs, direct reads before writes,
and other installations of the same app), polls as often as that allows down to the floor
(1 s by default: a change shows within about a second for up to 2,000 people, within about
4 s for 20,000), and slows down by itself when Graph throttles anyway.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from m365pbx.clock import Clock
from m365pbx.graph.client import GraphClient
from m365pbx.graph.errors import M365Error, Throttled
from m365pbx.graph.presence import (
    MAX_IDS_PER_REQUEST,
    PRESENCE_REQUESTS_PER_WINDOW,
    PRESENCE_WINDOW_S,
    PresenceReading,
    get_presences,
)
from m365pbx.sync.hub import PresenceHub
from m365pbx.sync.teams_to_pbx.readings import ReadingConverter

log = logging.getLogger(__name__)

# Requests of one round in flight at once: a round over 20,000 people (31 requests) takes
# about four round trips instead of 31 in a row.
PARALLEL_REQUESTS = 8
# Throttled rounds double the interval up to this factor; good rounds shrink it again.
MAX_SLOWDOWN = 16.0


@dataclass
class PollPlan:
    """How often to poll: the floor, the share of Graph's budget to use, the ceiling."""

    min_interval: float = 1.0
    max_interval: float = 600.0
    budget_share: float = 0.2

    def requests_for(self, people: int) -> int:
        """getPresencesByUserId calls one round over `people` takes."""
        return max(1, math.ceil(people / MAX_IDS_PER_REQUEST))

    def interval_for(self, people: int) -> float:
        """Seconds between rounds for `people`, staying within the budget share.

        Rounds start at least this far apart, so a 30 s window holds at most
        30 / interval of them; one round is kept spare because a round's requests
        spread over the time it takes.
        """
        allowed = PRESENCE_REQUESTS_PER_WINDOW * self.budget_share
        rounds = max(1, math.floor(allowed / self.requests_for(people)) - 1)
        return min(self.max_interval, max(self.min_interval, PRESENCE_WINDOW_S / rounds))


class PresencePoller:
    """Reads everyone's presence in rounds and feeds what changed into the hub."""

    def __init__(
        self,
        client: GraphClient,
        hub: PresenceHub,
        clock: Clock,
        user_ids: Callable[[], Sequence[str]],
        *,
        plan: PollPlan | None = None,
        converter: ReadingConverter | None = None,
        reconciling: bool = False,
        uncovered: Callable[[], Sequence[str]] | None = None,
        uncovered_plan: PollPlan | None = None,
        label: str = "presence poll",
    ) -> None:
        self.client = client
        self.hub = hub
        self.clock = clock
        self.user_ids = user_ids
        self.plan = plan or PollPlan()
        self.converter = converter or ReadingConverter()
        # In hybrid mode a difference found by polling is a notification that never came.
        self.reconciling = reconciling
        self.uncovered = uncovered
        self.uncovered_plan = uncovered_plan or PollPlan()
        self.rounds = 0
        self.uncovered_rounds = 0
        self.repairs = 0
        self.throttled = 0
        self.label = label
        self._last_error: str | None = None
        # When the current state (polling, or failing with last_error) began.
        self.since: datetime = clock.now()
        # When the round on its way was asked for; None between rounds (stall detection).
        self.round_started: datetime | None = None
        self._slowdown = 1.0
        self._soon = asyncio.Event()

    @property
    def last_error(self) -> str | None:
        """The last round's failure in words; None once a round succeeds again."""
        return self._last_error

    @last_error.setter
    def last_error(self, value: str | None) -> None:
        if (value is None) != (self._last_error is None):
            self.since = self.clock.now()
        self._last_error = value

    def stalled_for(self) -> float:
        """Seconds the round on its way has waited for Graph (0 between rounds)."""
        if self.round_started is None:
            return 0.0
        return max(0.0, (self.clock.now() - self.round_started).total_seconds())

    def poll_soon(self) -> None:
        """Run a round now (new people: learn their presence without waiting a round)."""
        self._soon.set()

    def interval(self) -> float:
        """The current interval, including any slowdown after throttling."""
        return min(self.plan.max_interval,
                   self.plan.interval_for(len(self.user_ids())) * self._slowdown)

    def uncovered_interval(self, people: int) -> float:
        """Seconds between rounds over `people` uncovered people, with any slowdown."""
        return min(self.uncovered_plan.max_interval,
                   self.uncovered_plan.interval_for(people) * self._slowdown)

    async def poll_once(self) -> int:
        """One round over everyone; return how many readings changed someone's state."""
        ids = list(self.user_ids())
        if not ids:
            return 0
        asked = self.clock.now().timestamp()
        readings = await self._read(ids)
        self.rounds += 1
        repaired: list[str] = []
        changed = self.feed(readings, repairing=self.reconciling, asked_at=asked,
                            repaired=repaired)
        if repaired:
            log.info("%s: reconciliation repaired %d people whose change notification never "
                     "came", self.label, len(repaired))
            log.debug("%s: repaired %s", self.label, ", ".join(repaired))
        return changed

    async def _read(self, ids: list[str]) -> list[PresenceReading]:
        self.round_started = self.clock.now()
        try:
            return await get_presences(self.client, ids, parallel=PARALLEL_REQUESTS)
        finally:
            self.round_started = None

    async def poll_uncovered(self) -> int:
        """One round over the people without flowing notifications (not a reconciliation)."""
        ids = list(self.uncovered()) if self.uncovered is not None else []
        if not ids:
            return 0
        asked = self.clock.now().timestamp()
        readings = await self._read(ids)
        self.uncovered_rounds += 1
        return self.feed(readings, asked_at=asked)

    def feed(self, readings: Sequence[PresenceReading], *, repairing: bool = False,
             asked_at: float | None = None, repaired: list[str] | None = None) -> int:
        """Hand readings to the hub; count those that differ from what it held.

        With `repairing`, a difference is a notification that never came (a repair).
        Readings are stamped with `asked_at`, when the request went out: what they show
        may predate a write of ours that completed while the answer was on its way.
        """
        now = self.clock.now().timestamp() if asked_at is None else asked_at
        changed = 0
        for reading in readings:
            converted = self.converter.convert(reading, now)
            before = self.hub.current_teams(reading.user_id)
            if before is not None and before.presence == converted.presence and (
                converted.status_message is None
                or before.status_message == converted.status_message
            ):
                continue
            if self.hub.teams_reading(reading.user_id, converted):
                changed += 1
                if repairing and before is not None:
                    self.repairs += 1
                    if repaired is not None:
                        repaired.append(f"{reading.user_id} ({before.presence} → "
                                        f"{converted.presence})")
        return changed

    async def run(self) -> None:
        """Poll until cancelled; slow down while Graph throttles, recover afterwards."""
        next_full = 0.0
        while True:
            now = self.clock.now().timestamp()
            full = self._soon.is_set() or now >= next_full
            self._soon.clear()
            try:
                if full:
                    next_full = now + self.interval()
                    await self.poll_once()
                else:
                    await self.poll_uncovered()
                self.last_error = None
                self._slowdown = max(1.0, self._slowdown * 0.75)
            except Throttled as exc:
                self.throttled += 1
                self._slowdown = min(MAX_SLOWDOWN, self._slowdown * 2)
                self.last_error = exc.describe()
                log.warning("%s: Graph throttles presence reads; next round in %.0f s at the "
                            "earliest (Retry-After %.0f s), then every %.1f s until Graph "
                            "stops throttling", self.label, max(exc.retry_after,
                                                                self.interval()),
                            exc.retry_after, self.interval())
                # Nothing before Graph's Retry-After, and the next round at the slower pace.
                next_full = max(next_full, self.clock.now().timestamp() + self.interval())
                await self.clock.sleep(exc.retry_after)
            except M365Error as exc:
                self.last_error = exc.describe()
                log.warning("presence poll failed: %s", exc.describe())
            await self._nap(self._until_next(next_full))

    def _until_next(self, next_full: float) -> float:
        """Seconds until the next round: the full one, or sooner for uncovered people."""
        wait = max(0.0, next_full - self.clock.now().timestamp())
        uncovered = len(self.uncovered()) if self.uncovered is not None else 0
        if uncovered:
            wait = min(wait, self.uncovered_interval(uncovered))
        return wait

    async def _nap(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        woken = asyncio.ensure_future(self._soon.wait())
        try:
            await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            woken.cancel()
