import httpx
import pytest
from starlette.requests import Request

from m365sim.auth import authenticate
from m365sim.clock import VirtualClock
from m365sim.errors import GraphError
from m365sim.simulator import Simulator
from tests.sim.conftest import app_token


async def test_unknown_path_gets_a_graph_error_body_not_a_traceback(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1.0/nothing-here")
    assert response.status_code == 404
    body = response.json()
    assert set(body["error"]) >= {"code", "message", "innerError"}
    assert "request-id" in body["error"]["innerError"]


async def test_date_header_follows_the_simulators_clock_and_skew(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    sim.settings.date_skew_s = 600
    response = await client.get("/v1.0/nothing-here")
    assert response.headers["date"].startswith("Mon, 05 Jan 2026 08:10:00")


async def test_expired_token_is_refused_on_the_virtual_clock(
    sim: Simulator, clock: VirtualClock
) -> None:
    token = app_token(sim, lifetime_s=60)
    scope = {"type": "http", "headers": [(b"authorization", f"Bearer {token}".encode())]}
    caller = authenticate(Request(scope), tenants=sim.directory.tenants, now=sim.clock.now(),
                          decode=sim.issuer.decode)
    assert not caller.delegated
    assert "Presence.Read.All" in caller.permissions  # implied by Presence.ReadWrite.All
    await clock.advance(61)
    with pytest.raises(GraphError) as caught:
        authenticate(Request(scope), tenants=sim.directory.tenants, now=sim.clock.now(),
                     decode=sim.issuer.decode)
    assert caught.value.status == 401 and caught.value.code == "InvalidAuthenticationToken"


async def test_virtual_clock_wakes_sleepers_in_time_order(clock: VirtualClock) -> None:
    import asyncio

    woke: list[tuple[str, float]] = []
    start = clock.now()

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, (clock.now() - start).total_seconds()))

    tasks = [asyncio.create_task(sleeper("late", 3600)), asyncio.create_task(sleeper("soon", 5))]
    await asyncio.sleep(0)
    await clock.advance(7200)
    await asyncio.gather(*tasks)
    assert woke == [("soon", 5.0), ("late", 3600.0)]


async def test_a_virtual_sleep_counts_from_its_call_not_from_its_first_step(
        clock: VirtualClock) -> None:
    # The simulator's delivery loop (and m365pbx's owners and pollers) start a sleep as a task
    # and a test may advance the clock before that task first runs: the wake must not move.
    import asyncio

    start = clock.now()
    sleeper = asyncio.ensure_future(clock.sleep(10))
    await clock.advance(4)          # the sleeper's task has not run yet
    assert not sleeper.done()
    await clock.advance(6)
    assert sleeper.done()
    assert (clock.now() - start).total_seconds() == 10
