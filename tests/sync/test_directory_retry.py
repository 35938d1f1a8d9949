"""A failed directory sync is tried again soon with backoff, not at the next full interval,
and an unexpected failure stays inside the sync (issue 18, items 4 and 8)."""

from __future__ import annotations

import asyncio
from typing import Any

from m365pbx.core.matching import MatchOptions
from m365pbx.graph.errors import SignInUnavailable
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.base import PbxUser
from m365pbx.sync.directory import ConnectionDirectory, DirectorySync
from m365pbx.sync.people import Person
from m365sim.clock import VirtualClock
from tests.sync.test_directory import TEAMS, MemoryPeople


async def run_until(check: Any, clock: VirtualClock, *, step: float = 1.0,
                    limit: float = 3600.0) -> float:
    """Advance the clock until `check()` holds; return the virtual seconds it took."""
    waited = 0.0
    while not check():
        assert waited < limit, "not reached within the limit"
        await clock.advance(step)
        await asyncio.sleep(0)
        waited += step
    return waited


async def test_microsoft_unreachable_at_first_then_back_within_minutes() -> None:
    clock = VirtualClock()
    pbx = ApiConnection("pbx")
    pbx.replace_users([PbxUser("anna", {"cn": "Anna Schmidt"})])
    reachable = False
    tries = 0

    async def fetch() -> list[dict[str, Any]]:
        nonlocal tries
        tries += 1
        if not reachable:
            error = SignInUnavailable("cannot reach Entra ID at login.example: connection failed")
            error.retry_after = 20.0
            raise error
        return TEAMS

    people: list[Person] = []
    sync = DirectorySync("contoso", fetch, [ConnectionDirectory("pbx", pbx, MatchOptions())],
                         MemoryPeople(), lambda p: people.extend(p), clock, interval=3600)
    started = clock.now()
    task = asyncio.create_task(sync.run())
    try:
        await run_until(lambda: tries >= 1, clock)
        assert sync.status.last_error is not None
        assert "cannot reach Entra ID" in sync.status.last_error
        failing_since = sync.status.since
        assert failing_since is not None and started <= failing_since <= clock.now()
        await run_until(lambda: tries >= 2, clock)
        # Entra's Retry-After (20 s) is honoured, and the retry is not an hour away.
        assert 20 <= (clock.now() - started).total_seconds() <= 60
        reachable = True
        await run_until(lambda: bool(people), clock, limit=400)
        assert sync.status.last_error is None
        assert sync.status.since == sync.status.last_success
    finally:
        task.cancel()


async def test_an_unexpected_failure_is_shown_and_the_sync_goes_on() -> None:
    clock = VirtualClock()
    pbx = ApiConnection("pbx")
    pbx.replace_users([PbxUser("anna", {"cn": "Anna Schmidt"})])
    answers: list[Any] = [KeyError("displayName"), TEAMS]

    async def fetch() -> list[dict[str, Any]]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    sync = DirectorySync("contoso", fetch, [ConnectionDirectory("pbx", pbx, MatchOptions())],
                         MemoryPeople(), lambda _p: None, clock)
    assert not await sync.sync_once()
    assert sync.status.last_error == "directory sync failed: KeyError: 'displayName'"
    assert await sync.sync_once()
    assert sync.status.last_error is None and sync.status.people == 1
