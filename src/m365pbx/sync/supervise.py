"""Keeping one part's failure to itself: a task that fails is logged, shown and restarted.

A bare TaskGroup ends every task when one raises; m365pbx runs the PBX side and each
tenant side by side in one process, and nothing tenant-side may stop the process
(design.md rule 5). Each long-running part therefore runs under `supervised`: an
unexpected exception is logged with its traceback once, handed to `on_failure` for the
part's visible state, and the part is started again after a backoff with jitter.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from m365pbx.clock import Clock
from m365pbx.pbx.sip.retry import Backoff

log = logging.getLogger(__name__)

RESTART_BACKOFF = Backoff(initial=5.0, maximum=300.0)


def describe_failure(exc: BaseException) -> str:
    """One line for an unexpected exception: its type and the first line of its message."""
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return describe_failure(exc.exceptions[0])
    cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    first = (str(cause).splitlines() or [""])[0][:200]
    return f"{type(cause).__name__}: {first}" if first else type(cause).__name__


async def supervised(
    name: str,
    run: Callable[[], Awaitable[None]],
    clock: Clock,
    *,
    on_failure: Callable[[str], None] | None = None,
    backoff: Backoff = RESTART_BACKOFF,
    rng: random.Random | None = None,
) -> None:
    """Run `run()` until it returns or is cancelled, restarting it after unexpected failures."""
    failures = 0
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            delay = backoff.delay(failures, rng=rng)
            failures += 1
            log.exception("%s failed; starting it again in %.0f s", name, delay)
            if on_failure is not None:
                on_failure(f"{name} failed: {describe_failure(exc)}")
            await clock.sleep(delay)
