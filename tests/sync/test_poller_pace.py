"""The polling pace (issue 20 §5): at 2,000 people a change made in Teams reaches the PBX
within 3 s of virtual time using at most a fifth of Graph's presence budget, and a 429 storm
with Retry-After slows the poller down until Graph stops throttling, then it recovers.

The simulator answers in-process on the virtual clock; after each clock step the test waits
(in wall time) until the round that step started has finished, so the virtual times are
what m365pbx achieves with Graph answering at once, whatever this machine's load.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest

from m365pbx.core.mapping import DEFAULT_RULES, CompiledMapping
from m365pbx.core.policy import PolicyConfig
from m365pbx.core.presence import PbxPresence
from m365pbx.graph.client import GraphClient
from m365pbx.pbx.base import PbxUser
from m365pbx.sync.hub import PresenceHub
from m365pbx.sync.pbx_to_teams import BatchingTeamsSink
from m365pbx.sync.people import Person
from m365pbx.sync.teams_to_pbx.poller import PollPlan, PresencePoller
from m365sim.app import create_app
from m365sim.clock import VirtualClock
from m365sim.directory.generate import generate_users
from m365sim.faults import PRESENCE_READ, FaultRule
from m365sim.model import Tenant
from m365sim.presence.states import client_state
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID, TENANT_ID
from tests.sync.test_pbx_to_teams_sink import SimTokens

CONFIG = PolicyConfig(mapping=CompiledMapping(DEFAULT_RULES))
BUDGET = 1500  # presence requests per 30 s per app and tenant (cloudcommunications-...md)
PRESENCE_PATH = "/v1.0/communications/getPresencesByUserId"
CHANGES = [(("Busy", "Busy"), PbxPresence.BUSY), (("Away", "Away"), PbxPresence.AWAY),
           (("DoNotDisturb", "DoNotDisturb"), PbxPresence.DND),
           (("Available", "Available"), PbxPresence.ONLINE)]


class ShownAt:
    """The PBX side: when each person's presence was shown, on the virtual clock."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.shown: dict[str, tuple[PbxPresence, float]] = {}

    async def show(self, person: Person, presence: PbxPresence, note: str) -> None:
        """Remember what the PBX shows for this person and when."""
        self.shown[person.teams_user_id] = (presence, self.clock.now().timestamp())


class Counted(httpx.AsyncBaseTransport):
    """The simulator in-process, counting the requests it is answering right now."""

    def __init__(self, sim: Simulator) -> None:
        self.inner = httpx.ASGITransport(app=create_app(sim))
        self.in_flight = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer the request, counted while it is on its way."""
        self.in_flight += 1
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.in_flight -= 1


TRANSPORTS: dict[int, Counted] = {}


@pytest.fixture
async def graph(sim: Simulator) -> AsyncIterator[GraphClient]:
    """A Graph client on the in-process simulator (429s are retried, as in the service)."""
    transport = Counted(sim)
    async with httpx.AsyncClient(transport=transport, base_url="https://sim.test") as http:
        client = GraphClient(SimTokens(sim), http, base_url="https://sim.test", clock=sim.clock)
        TRANSPORTS[id(client)] = transport
        yield client
        del TRANSPORTS[id(client)]


def polling(sim: Simulator, tenant: Tenant, clock: VirtualClock, graph: GraphClient,
            people: int) -> tuple[PresencePoller, PresenceHub, ShownAt, list[str]]:
    """A poller with the service's default plan over `people` generated Teams users."""
    users = generate_users(sim, tenant, users=people, seed=20, teams_share=1.0,
                           disabled_share=0.0)
    ids = [u.id for u in users]
    pbx = ShownAt(clock)
    sink = BatchingTeamsSink(lambda _p: graph, lambda _p: APP_ID, clock)
    hub = PresenceHub(clock, pbx, sink, lambda _p: CONFIG, workers=4)
    hub.set_people([Person(n, "pbx", PbxUser(f"u{n}"), uid) for n, uid in enumerate(ids)])
    poller = PresencePoller(graph, hub, clock, lambda: ids, plan=PollPlan(),
                            label="contoso presence poll")
    return poller, hub, pbx, ids


async def step(clock: VirtualClock, poller: PresencePoller, hub: PresenceHub,
               seconds: float) -> None:
    """Advance the virtual clock, then wait until what that started is done (a round's
    requests answered and fed to the hub; a wait for Retry-After is on the virtual clock)."""
    transport = TRANSPORTS[id(poller.client)]
    await clock.advance(seconds)
    quiet = 0
    while quiet < 20:
        await asyncio.sleep(0 if transport.in_flight == 0 else 0.002)
        quiet = quiet + 1 if transport.in_flight == 0 else 0
    await hub.settled()


def presence_reads(sim: Simulator, since: float) -> list[tuple[float, str]]:
    """(time, outcome) of each presence read Graph saw since `since`."""
    return [(t, str(r["outcome"])) for r in sim.faults.requests()
            if r["bucket"] == PRESENCE_READ
            and (t := datetime.fromisoformat(r["time"]).timestamp()) >= since]


def busiest_30s(times: list[float]) -> int:
    """The most requests in any 30 s window."""
    return max((sum(1 for t in times if start <= t < start + 30) for start in times), default=0)


async def test_at_2000_people_a_change_shows_within_3_s_within_a_fifth_of_the_budget(
    sim: Simulator, tenant: Tenant, clock: VirtualClock, graph: GraphClient,
) -> None:
    poller, hub, pbx, ids = polling(sim, tenant, clock, graph, 2000)
    workers = asyncio.create_task(hub.run())
    task = asyncio.create_task(poller.run())
    try:
        await step(clock, poller, hub, 0.1)
        assert poller.rounds == 1  # everyone learnt at start
        since = clock.now().timestamp()
        rng = random.Random(5)  # reproducible: which people, which change, when
        staleness: list[float] = []
        for n in range(12):
            person = ids[rng.randrange(len(ids))]
            (availability, activity), presence = CHANGES[n % 3]
            await step(clock, poller, hub, round(rng.uniform(0.1, 2.0), 1))
            state = client_state(availability, activity)
            assert state is not None
            sim.presence.set_client_state(TENANT_ID, person, state)
            changed = clock.now().timestamp()
            # Generous in virtual time: 10 s to see it, then it must be within 3 s.
            for _ in range(100):
                if pbx.shown.get(person, (None, 0.0))[0] is presence:
                    break
                await step(clock, poller, hub, 0.1)
            shown = pbx.shown.get(person)
            assert shown is not None and shown[0] is presence, f"change {n} never shown"
            staleness.append(shown[1] - changed)
        assert max(staleness) <= 3.0, staleness
        await step(clock, poller, hub, 30)  # a whole window at the steady pace
        reads = presence_reads(sim, since)
        assert all(outcome == "ok" for _, outcome in reads)
        assert busiest_30s([t for t, _ in reads]) <= BUDGET / 5
    finally:
        task.cancel()
        workers.cancel()


async def test_a_429_storm_with_retry_after_slows_the_poller_down_then_it_recovers(
    sim: Simulator, tenant: Tenant, clock: VirtualClock, graph: GraphClient,
) -> None:
    poller, hub, pbx, ids = polling(sim, tenant, clock, graph, 100)
    workers = asyncio.create_task(hub.run())
    task = asyncio.create_task(poller.run())
    try:
        await step(clock, poller, hub, 0.1)
        base = poller.interval()
        assert base == 1.0
        # Two minutes in which Graph throttles every presence read, asking for 10 s.
        storm = FaultRule(status=429, path_prefix=PRESENCE_PATH, retry_after_s=10)
        sim.faults.add_fault(storm)
        began = clock.now().timestamp()
        for _ in range(120):
            await step(clock, poller, hub, 1.0)
        sim.faults.clear_faults()
        reads = presence_reads(sim, began)
        throttled = [t for t, outcome in reads if outcome == "fault"]
        assert throttled, "the storm never hit a read"
        # Nothing is sent before Graph's Retry-After has passed: at most one read per 10 s.
        gaps = [b - a for a, b in itertools.pairwise(throttled)]
        assert min(gaps) >= 10.0
        assert len(throttled) <= 13
        assert poller.throttled >= 1
        assert "Graph 429" in (poller.last_error or "")  # visible in /healthz meanwhile
        assert poller.interval() > base  # slower than before the storm
        # After the storm: back to the plain pace, and a change shows within seconds again.
        for _ in range(200):
            if poller.interval() == base and poller.last_error is None:
                break
            await step(clock, poller, hub, 1.0)
        assert poller.interval() == base and poller.last_error is None
        person = ids[7]
        state = client_state("Busy", "Busy")
        assert state is not None
        sim.presence.set_client_state(TENANT_ID, person, state)
        changed = clock.now().timestamp()
        for _ in range(100):
            if pbx.shown.get(person, (None, 0.0))[0] is PbxPresence.BUSY:
                break
            await step(clock, poller, hub, 0.1)
        assert pbx.shown[person][0] is PbxPresence.BUSY
        assert pbx.shown[person][1] - changed <= 3.0
    finally:
        task.cancel()
        workers.cancel()
