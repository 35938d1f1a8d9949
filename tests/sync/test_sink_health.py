"""What the Teams-write part of /healthz says: a hung Graph is a failure, and recovery clears
the error (issue 18, item 8)."""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from m365pbx.core.mapping import Channel
from m365pbx.core.policy import TeamsAction
from m365pbx.core.presence import Activity, Availability, TeamsPresence
from m365pbx.graph.client import GraphClient, RetryPolicy
from m365pbx.pbx.base import PbxUser
from m365pbx.sync.hub import RetryLater
from m365pbx.sync.pbx_to_teams import BatchingTeamsSink
from m365pbx.sync.people import Person
from m365sim.app import create_app
from m365sim.clock import VirtualClock
from m365sim.faults import FaultRule
from m365sim.model import Tenant
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID
from tests.sync.test_pbx_to_teams_sink import SimTokens

IN_A_CALL = TeamsAction(Channel.SESSION, TeamsPresence(Availability.BUSY, Activity.IN_A_CALL))


class Hanging(httpx.AsyncBaseTransport):
    """The simulator in-process, except that writes hang while `gate` is closed."""

    def __init__(self, sim: Simulator) -> None:
        self.inner = httpx.ASGITransport(app=create_app(sim))
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = 0
        self.held = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Hold writes until the gate opens; pass everything else."""
        if request.url.path.endswith("/setPresence") and not self.gate.is_set():
            self.waiting += 1
            self.held.set()
            await self.gate.wait()
        return await self.inner.handle_async_request(request)


def people_of(sim: Simulator, tenant: Tenant) -> list[Person]:
    """Two people of the Contoso tenant."""
    return [Person(n, "pbx", PbxUser(upn), tenant.users_by_upn[f"{upn}@contoso.com"])
            for n, upn in enumerate(("anna", "ben"), 1)]


async def test_a_write_graph_never_answers_is_a_stall_and_holds_the_others(
    sim: Simulator, tenant: Tenant, clock: VirtualClock,
) -> None:
    transport = Hanging(sim)
    async with httpx.AsyncClient(transport=transport, base_url="https://sim.test") as http:
        graph = GraphClient(SimTokens(sim), http, base_url="https://sim.test", clock=clock,
                            retry=RetryPolicy(attempts=1))
        sink = BatchingTeamsSink(lambda _p: graph, lambda _p: APP_ID, clock, stall_after=30)
        anna, ben = people_of(sim, tenant)
        assert sink.status().since == clock.now().timestamp()
        transport.gate.clear()
        hung = asyncio.create_task(sink.apply(anna, IN_A_CALL))
        await asyncio.wait_for(transport.held.wait(), timeout=10)
        await clock.advance(10)
        assert sink.status().stalled_since is None  # slow, not yet stalled
        await clock.advance(25)
        status = sink.status()
        stalled_at = status.stalled_since
        assert stalled_at is not None and status.since == stalled_at
        # The next write does not pile onto a Graph that hangs: it is held.
        try:
            await sink.apply(ben, IN_A_CALL)
            raise AssertionError("the write should have been held")
        except RetryLater:
            pass
        status = sink.status()
        assert status.down and status.waiting == 1
        assert status.last_error is not None and "has not answered" in status.last_error

        transport.gate.set()  # Graph answers at last
        await asyncio.wait_for(hung, timeout=10)
        status = sink.status()
        assert not status.down and status.stalled_since is None
        assert status.last_error is None
        assert status.since == clock.now().timestamp()
        await sink.aclose()


async def test_the_error_of_an_outage_clears_when_graph_answers_again(
    sim: Simulator, tenant: Tenant, clock: VirtualClock, client: httpx.AsyncClient,
) -> None:
    graph = GraphClient(SimTokens(sim), client, base_url="https://sim.test", clock=clock,
                        retry=RetryPolicy(attempts=1))
    sink = BatchingTeamsSink(lambda _p: graph, lambda _p: APP_ID, clock)
    anna, _ = people_of(sim, tenant)
    sim.faults.add_fault(FaultRule(status=503, path_prefix="/v1.0/users/"))
    with contextlib.suppress(RetryLater):
        await sink.apply(anna, IN_A_CALL)
    down = sink.status()
    assert down.down and down.last_error is not None and down.since == down.down_since
    sim.faults.clear_faults()
    await clock.advance(2)
    sink._lanes[id(graph)].allow_probe = True  # the prober's turn, without its task's timing
    await sink.apply(anna, IN_A_CALL)
    status = sink.status()
    assert not status.down and status.last_error is None
    assert status.since == clock.now().timestamp()
    await sink.aclose()
