"""People beyond what the service accounts can carry are reported, with the number of
accounts missing (issue 18, item 11); an owner that fails unexpectedly stays inside its
account (issue 18, item 4)."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from m365pbx.graph.client import GraphClient
from m365pbx.pbx.base import ConnectionState
from m365pbx.sync.teams_to_pbx.owner import AccountOwner, Endpoints
from m365pbx.sync.teams_to_pbx.pool import SubscriptionPool
from m365pbx.sync.teams_to_pbx.records import MemoryRecords
from m365sim.clock import VirtualClock
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID, TENANT_ID
from tests.sync.test_pbx_to_teams_sink import SimTokens


def owners(count: int, clock: VirtualClock, http: httpx.AsyncClient,
           tokens: SimTokens) -> list[AccountOwner]:
    """`count` owners that would deliver to a local URL."""
    client = GraphClient(tokens, http, base_url="https://sim.test", clock=clock)
    endpoints = Endpoints("https://m365pbx.example/graph/notifications", None, lambda: None)
    return [AccountOwner(f"svc{n}@contoso.com", client, clock, MemoryRecords(), endpoints,
                         tenant_id=TENANT_ID, app_id=APP_ID) for n in range(1, count + 1)]


async def test_people_beyond_the_capacity_are_reported_with_the_accounts_missing(
    sim: Simulator, clock: VirtualClock, client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="m365pbx.sync.teams_to_pbx.pool")
    pool = SubscriptionPool(owners(2, clock, client, SimTokens(sim)),
                            label="tenant contoso", capacity=650)
    people = [f"user-{n:04d}" for n in range(1454)]
    pool.assign(people)
    shortfall = pool.shortfall()
    assert (shortfall.people, shortfall.accounts, shortfall.unassigned) == (1454, 2, 154)
    assert shortfall.accounts_missing == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "tenant contoso: 154 of 1454 people exceed what 2 service account(s) can carry "
        "(650 each): their presence is polled, not notified. Add 1 service account(s)."]
    pool.assign(people)  # the same again: said once
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    pool.assign(people[:1300])
    assert pool.shortfall().unassigned == 0 and pool.shortfall().accounts_missing == 0
    assert "every person is carried by a service account again" in caplog.text


async def test_an_owner_that_fails_unexpectedly_is_shown_and_started_again(
    sim: Simulator, clock: VirtualClock, client: httpx.AsyncClient,
) -> None:
    first, second = owners(2, clock, client, SimTokens(sim))
    crashes = 0
    real_run = first.run

    async def broken_once() -> None:
        nonlocal crashes
        if crashes == 0:
            crashes += 1
            raise RuntimeError("a bug\nwith a second line")
        await real_run()

    first.run = broken_once  # type: ignore[method-assign]
    pool = SubscriptionPool([first, second])
    task = asyncio.create_task(pool.run())
    try:
        for _ in range(50):
            await asyncio.sleep(0)
        assert first.state is ConnectionState.ERROR
        assert first.last_error == (f"presence subscription of {first.account} failed: "
                                    "RuntimeError: a bug")
        assert not task.done()  # the other account's owner runs on
        await clock.advance(600)
        for _ in range(50):
            await asyncio.sleep(0)
        assert crashes == 1 and not task.done()
    finally:
        task.cancel()
