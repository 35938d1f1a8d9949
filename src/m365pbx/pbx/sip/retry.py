"""Backoff with jitter, Retry-After, and a keyed timer scheduler for refreshes and retries."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with "equal jitter": a delay between half and all of the ceiling."""

    initial: float = 1.0
    maximum: float = 60.0
    factor: float = 2.0

    def delay(
        self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before retry number `attempt` (0-based); honours Retry-After."""
        chooser = rng or random
        ceiling = min(self.maximum, self.initial * self.factor ** min(attempt, 32))
        delay = chooser.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            # Spread the clients a server sent away for the same time (design.md rule 5).
            delay = max(delay, retry_after + chooser.uniform(0, self.initial))
        return delay


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from `Retry-After: 120 (comment);duration=...` (RFC 3261 §20.33)."""
    if not value:
        return None
    head = value.split(";", 1)[0].split("(", 1)[0].strip()
    if not head.isdigit() or len(head) > 8:
        return None
    return float(head)


TaskFactory = Callable[[], Coroutine[Any, Any, None]]


class Scheduler:
    """Runs coroutines later, at most one pending timer per key; tracks their tasks."""

    def __init__(self) -> None:
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._tokens: dict[Hashable, object] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def later(
        self,
        key: Hashable,
        delay: float,
        factory: TaskFactory,
        *,
        token: object | None = None,
        slack: float = 0.0,
    ) -> None:
        """Run `factory()` after `delay` seconds, replacing any timer pending for `key`.

        With a `token`, a timer pending for `key` with that same token (by identity) that
        fires at most `slack` seconds earlier is kept instead: it does the same job a
        moment early. A burst of changes to one publication then moves no timer at all
        (each move was a cancelled entry in the event loop's heap).
        """
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + max(0.0, delay)
        pending = self._timers.get(key)
        if (
            token is not None
            and pending is not None
            and self._tokens.get(key) is token
            and due - slack <= pending.when() <= due
        ):
            return
        self.cancel(key)
        self._timers[key] = loop.call_at(due, self._fire, key, factory)
        if token is not None:
            self._tokens[key] = token

    def _fire(self, key: Hashable, factory: TaskFactory) -> None:
        self._timers.pop(key, None)
        self._tokens.pop(key, None)
        self.spawn(factory())

    def cancel(self, key: Hashable) -> None:
        """Drop the timer pending for `key`, if any."""
        self._tokens.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def pending(self, key: Hashable) -> bool:
        """True if a timer is pending for `key`."""
        return key in self._timers

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a coroutine now as a tracked task; its exceptions are logged, never lost."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background SIP task failed", exc_info=task.exception())

    async def close(self) -> None:
        """Cancel every timer and task and wait for the tasks to end."""
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._tokens.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
