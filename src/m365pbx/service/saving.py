"""Saving a connection's state whenever it changes, retrying with backoff when the store fails."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

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
