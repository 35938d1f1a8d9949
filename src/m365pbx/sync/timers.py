"""Wake-ups at given times on the injected clock, re-armed when an earlier one arrives."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

from m365pbx.clock import Clock

# Upper bounds (seconds) of the lateness histogram: how long after its time a key fired.
LATENESS_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1.0, 5.0)


class TimerWheel:
    """Calls `fire(key)` once the clock reaches the time asked for that key."""

    def __init__(self, clock: Clock, fire: Callable[[int], None]) -> None:
        self._clock = clock
        self._fire = fire
        self._heap: list[tuple[float, int, int]] = []
        self._due: dict[int, float] = {}
        self._order = itertools.count()
        self._changed = asyncio.Event()
        # Fires per lateness bucket (the last one: later than every bound), and their sum.
        self.lateness_bounds = LATENESS_BUCKETS
        self.lateness_counts = [0] * (len(LATENESS_BUCKETS) + 1)
        self.lateness_sum = 0.0

    def at(self, key: int, when: float) -> None:
        """Wake `key` at POSIX time `when` (an earlier request for the key wins)."""
        current = self._due.get(key)
        if current is not None and current <= when:
            return
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._order), key))
        self._changed.set()

    def next_due(self) -> float | None:
        """The earliest time a key is due, if any."""
        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._due)

    def _note_lateness(self, late: float) -> None:
        self.lateness_sum += late
        for index, bound in enumerate(LATENESS_BUCKETS):
            if late <= bound:
                self.lateness_counts[index] += 1
                return
        self.lateness_counts[-1] += 1

    async def _sleep_until(self, when: float) -> None:
        # The delay is measured when the sleep starts: a virtual clock may have moved on
        # between scheduling this coroutine and its first step.
        await self._clock.sleep(when - self._clock.now().timestamp())

    async def run(self) -> None:
        """Fire keys as their times come, until cancelled."""
        while True:
            now = self._clock.now().timestamp()
            while self._heap and self._heap[0][0] <= now:
                when, _, key = heapq.heappop(self._heap)
                if self._due.get(key) == when:
                    del self._due[key]
                    self._note_lateness(now - when)
                    self._fire(key)
            self._changed.clear()
            wake = self._heap[0][0] if self._heap else now + 3600.0
            sleeper = asyncio.ensure_future(self._sleep_until(wake))
            changed = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                changed.cancel()
