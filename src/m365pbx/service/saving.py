"""Keeping a connection's state in the store: restored at start, saved when it changes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from m365pbx.pbx.sip.retry import Backoff

log = logging.getLogger(__name__)


async def save_when_woken(
    wake: asyncio.Event,
    save: Callable[[], Awaitable[None]],
    *,
    owner: str,
    what: str,
    backoff: Backoff,
    delay: float = 0.0,
    every: float | None = None,
) -> None:
    """Run `save` after each `wake` (and every `every` s) until cancelled; retry failures."""
    failures = 0
    while True:
        if every is None:
            await wake.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), every)
        wake.clear()
        if delay:
            # Changes arriving meanwhile go into the same write.
            await asyncio.sleep(delay)
        try:
            await save()
        except Exception as exc:
            log.warning("%s: could not save %s (trying again): %s", owner, what, exc)
            await asyncio.sleep(backoff.delay(failures))
            failures += 1
            wake.set()
        else:
            failures = 0


class Keeper(Protocol):
    """What keeps one connection's state in the store."""

    async def restore(self) -> int:
        """Put the saved state back into the connection; return how much there was."""
        ...

    async def run(self) -> None:
        """Save changes until cancelled."""
        ...

    async def save(self) -> None:
        """Write what changed now."""
        ...


class KeptState:
    """A keeper tied to its connection's life: restored once, saving while it runs."""

    def __init__(self, keeper: Keeper, *, owner: str, what: str) -> None:
        self.keeper = keeper
        self.owner = owner
        self.what = what
        self._task: asyncio.Task[None] | None = None
        self._restored = False

    @property
    def running(self) -> bool:
        """Whether the saver runs (the connection was started and not stopped)."""
        return self._task is not None

    async def restore_once(self) -> None:
        """Put the saved state back, the first time only (a restarted connection keeps it)."""
        if not self._restored:
            self._restored = True
            await self.keeper.restore()

    def run(self) -> None:
        """Start saving changes in the background."""
        self._task = asyncio.get_running_loop().create_task(
            self.keeper.run(), name=f"{self.owner}: {self.what}")

    async def stop(self, *, save: bool) -> None:
        """Stop saving; with `save`, write what is left (a failure is logged, not raised)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if save:
            try:
                await self.keeper.save()
            except Exception as exc:
                log.warning("%s: could not save %s at stop: %s", self.owner, self.what, exc)
