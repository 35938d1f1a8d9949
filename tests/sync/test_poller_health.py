"""What the presence poller tells: repairs of reconciliation in the log (how many at INFO,
whom at DEBUG), a round Graph leaves unanswered, and since when it fails or works
(issue 18, items 8 and 11)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from m365pbx.core.mapping import DEFAULT_RULES, CompiledMapping
from m365pbx.core.policy import PolicyConfig
from m365pbx.graph.client import GraphClient, RetryPolicy
from m365pbx.pbx.base import PbxUser
from m365pbx.sync.hub import PresenceHub
from m365pbx.sync.pbx_to_teams import BatchingTeamsSink
from m365pbx.sync.people import Person
from m365pbx.sync.teams_to_pbx.poller import PresencePoller
from m365sim.app import create_app
from m365sim.clock import VirtualClock
from m365sim.faults import FaultRule
from m365sim.model import Tenant
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID, TENANT_ID
from tests.sync.test_pbx_to_teams_sink import NoPbx, SimTokens

CONFIG = PolicyConfig(mapping=CompiledMapping(DEFAULT_RULES))


class Gate(httpx.AsyncBaseTransport):
    """The simulator in-process; presence reads wait while the gate is closed."""

    def __init__(self, sim: Simulator) -> None:
        self.inner = httpx.ASGITransport(app=create_app(sim))
        self.open = asyncio.Event()
        self.open.set()
        self.held = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Hold presence reads until the gate opens."""
        if request.url.path.endswith("/getPresencesByUserId") and not self.open.is_set():
            self.held.set()
            await self.open.wait()
        return await self.inner.handle_async_request(request)


@pytest.fixture
async def gate(sim: Simulator) -> AsyncIterator[tuple[Gate, GraphClient]]:
    """A Graph client through the gate."""
    transport = Gate(sim)
    async with httpx.AsyncClient(transport=transport, base_url="https://sim.test") as http:
        yield transport, GraphClient(SimTokens(sim), http, base_url="https://sim.test",
                                     clock=sim.clock, retry=RetryPolicy(attempts=1))


def poller_for(sim: Simulator, tenant: Tenant, clock: VirtualClock,
               graph: GraphClient) -> tuple[PresencePoller, list[str]]:
    """A reconciling poller over Anna and Ben, feeding a real hub."""
    ids = [tenant.users_by_upn[f"{n}@contoso.com"] for n in ("anna", "ben")]
    sink = BatchingTeamsSink(lambda _p: graph, lambda _p: APP_ID, clock)
    hub = PresenceHub(clock, NoPbx(), sink, lambda _p: CONFIG, workers=2)
    hub.set_people([Person(n, "pbx", PbxUser(f"u{n}"), uid) for n, uid in enumerate(ids, 1)])
    return PresencePoller(graph, hub, clock, lambda: ids, reconciling=True,
                          label="contoso presence poll"), ids


async def test_repairs_are_logged_how_many_at_info_and_whom_at_debug(
    sim: Simulator, tenant: Tenant, clock: VirtualClock, gate: tuple[Gate, GraphClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    poller, (anna, ben) = poller_for(sim, tenant, clock, gate[1])
    await poller.poll_once()  # the first readings are learning, not repairs
    assert poller.repairs == 0
    # Anna sets Busy; her notification is lost on the way.
    sim.presence.set_preferred(TENANT_ID, anna, ("Busy", "Busy"), None, "user")
    caplog.set_level(logging.DEBUG, logger="m365pbx.sync.teams_to_pbx.poller")
    await poller.poll_once()
    assert poller.repairs == 1
    info = [r for r in caplog.records if r.levelno == logging.INFO]
    assert [r.getMessage() for r in info] == [
        "contoso presence poll: reconciliation repaired 1 people whose change notification "
        "never came"]
    debug = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)
    assert anna in debug and "Busy/Busy" in debug and ben not in debug


async def test_a_round_graph_leaves_unanswered_shows_how_long(
    sim: Simulator, tenant: Tenant, clock: VirtualClock, gate: tuple[Gate, GraphClient],
) -> None:
    transport, graph = gate
    poller, _ = poller_for(sim, tenant, clock, graph)
    assert poller.stalled_for() == 0
    transport.open.clear()
    round_ = asyncio.create_task(poller.poll_once())
    await asyncio.wait_for(transport.held.wait(), timeout=10)
    await clock.advance(45)
    assert poller.stalled_for() == 45
    transport.open.set()
    await asyncio.wait_for(round_, timeout=10)
    assert poller.stalled_for() == 0


async def test_since_marks_when_polling_began_to_fail_and_to_work_again(
    sim: Simulator, tenant: Tenant, clock: VirtualClock, gate: tuple[Gate, GraphClient],
) -> None:
    poller, _ = poller_for(sim, tenant, clock, gate[1])
    started = poller.since
    sim.faults.add_fault(FaultRule(status=503, path_prefix="/v1.0/communications/"))
    task = asyncio.create_task(poller.run())
    try:
        while poller.last_error is None:
            await clock.advance(1)
            await asyncio.sleep(0)
        failing_since = poller.since
        assert failing_since > started
        await clock.advance(30)
        await asyncio.sleep(0)
        assert poller.since == failing_since  # still the same failure
        sim.faults.clear_faults()
        while poller.last_error is not None:
            await clock.advance(1)
            await asyncio.sleep(0)
        assert poller.since > failing_since
    finally:
        task.cancel()
