"""The keyed scheduler behind refreshes and retries, on the real event loop."""

from __future__ import annotations

import asyncio

from m365pbx.pbx.sip.retry import Scheduler, TaskFactory
from tests.pbx.sip.helpers import wait_until


async def test_a_refresh_already_due_a_little_earlier_is_kept_not_moved() -> None:
    scheduler = Scheduler()
    ran: list[str] = []
    publication, other = object(), object()

    def job(name: str) -> TaskFactory:
        async def run() -> None:
            ran.append(name)

        return run

    try:
        scheduler.later("k", 100, job("first"), token=publication, slack=10)
        first = scheduler._timers["k"]
        scheduler.later("k", 105, job("same, a little later"), token=publication, slack=10)
        assert scheduler._timers["k"] is first  # kept: fires 5 s early, within the slack
        scheduler.later("k", 120, job("same, much later"), token=publication, slack=10)
        assert scheduler._timers["k"] is not first  # moved: 20 s early is beyond the slack
        moved = scheduler._timers["k"]
        scheduler.later("k", 110, job("same, earlier"), token=publication, slack=10)
        assert scheduler._timers["k"] is not moved  # never later than asked
        earlier = scheduler._timers["k"]
        scheduler.later("k", 111, job("another"), token=other, slack=10)
        assert scheduler._timers["k"] is not earlier  # not the same publication
        another = scheduler._timers["k"]
        scheduler.later("k", 112, job("a retry"))
        assert scheduler._timers["k"] is not another  # no token: always replaced
        scheduler.cancel("k")
        # The kept timer is the one that runs.
        scheduler.later("k", 0.05, job("kept"), token=publication, slack=1)
        scheduler.later("k", 0.1, job("dropped"), token=publication, slack=1)
        await wait_until(lambda: ran == ["kept"])
        await asyncio.sleep(0.2)
        assert ran == ["kept"] and "k" not in scheduler._timers
    finally:
        await scheduler.close()
