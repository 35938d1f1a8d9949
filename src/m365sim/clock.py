"""Time for the simulator: the wall clock, or a virtual clock tests advance by hand.

The virtual clock can be shared with m365pbx in one process (docs/architecture.md, "Time"):
both only need `now()` and `sleep()`, so one VirtualClock instance serves both sides.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What the simulator needs from time."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def sleep(self, seconds: float) -> Awaitable[None]:
        """Wait `seconds` of this clock's time, counted from the call."""
        ...


class WallClock:
    """Real time."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of real time."""
        await asyncio.sleep(max(0.0, seconds))


class VirtualClock:
    """Time that moves only when a test calls `advance`; sleepers wake in time order."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("the virtual clock needs a timezone-aware start time")
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        """The current virtual time."""
        return self._now

    def sleep(self, seconds: float) -> Awaitable[None]:
        """Wait until the virtual time has moved `seconds` on from now (0: just yield).

        Not a coroutine on purpose: the deadline is taken at the call. A coroutine would take
        it only when its task first runs, so `ensure_future(clock.sleep(10))` followed by an
        `advance` in the same step would wake 10 s after the advance instead.
        """
        if seconds <= 0:
            return asyncio.sleep(0)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        wake = self._now + timedelta(seconds=seconds)
        heapq.heappush(self._sleepers, (wake, next(self._order), future))
        return future

    def next_wake(self) -> datetime | None:
        """When the earliest sleeper wakes, if any."""
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    async def advance(self, seconds: float) -> None:
        """Move time on by `seconds`, waking each sleeper at its own moment in order."""
        target = self._now + timedelta(seconds=seconds)
        while True:
            wake = self.next_wake()
            if wake is None or wake > target:
                break
            self._now = max(self._now, wake)
            while self._sleepers and self._sleepers[0][0] <= self._now:
                _, _, future = heapq.heappop(self._sleepers)
                if not future.done():
                    future.set_result(None)
            # Let the woken tasks run (and perhaps sleep again) before time moves further.
            for _ in range(5):
                await asyncio.sleep(0)
        self._now = target
        for _ in range(5):
            await asyncio.sleep(0)

    def set(self, when: datetime) -> None:
        """Jump to `when` without waking anyone (for setting up a test)."""
        self._now = when
