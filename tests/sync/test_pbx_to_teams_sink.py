"""The batching Teams sink against the in-process simulator: bursts in `$batch`, inner 429s
per person with their own Retry-After, an outage held back and re-asserted afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from m365pbx.core.mapping import DEFAULT_RULES, Channel, CompiledMapping
from m365pbx.core.policy import LineReading, PolicyConfig, TeamsAction
from m365pbx.core.presence import LineState, PbxPresence
from m365pbx.graph.client import GraphClient, RetryPolicy
from m365pbx.pbx.base import PbxUser
from m365pbx.sync.hub import PresenceHub
from m365pbx.sync.pbx_to_teams import BatchingTeamsSink
from m365pbx.sync.people import Person
from m365sim.clock import VirtualClock
from m365sim.directory.generate import generate_users
from m365sim.faults import FaultRule
from m365sim.model import Tenant
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID, app_token

CONFIG = PolicyConfig(mapping=CompiledMapping(DEFAULT_RULES))


class SimTokens:
    """Application tokens straight from the simulator's issuer."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def token(self) -> str:
        return app_token(self.sim)

    async def invalidate(self) -> None:
        return None


class NoPbx:
    async def show(self, person: Person, presence: PbxPresence, note: str) -> None:
        return None


@dataclass
class World:
    sim: Simulator
    tenant: Tenant
    clock: VirtualClock
    hub: PresenceHub
    sink: BatchingTeamsSink
    people: list[Person]

    def calls(self, people: list[Person] | None = None) -> None:
        now = self.clock.now().timestamp()
        for person in people or self.people:
            self.hub.line_state("pbx", person.key, LineReading(LineState.ON_THE_PHONE, now, 1))

    def in_a_call(self) -> int:
        answers = self.sim.presence.read_many(self.tenant, [p.teams_user_id for p in self.people])
        return sum(1 for a in answers if a["activity"] == "InACall")

    async def settle(self, seconds: float = 0.0, step: float = 1.0) -> None:
        await self.hub.settled()
        waited = 0.0
        while waited < seconds:
            await self.clock.advance(step)
            waited += step
            await asyncio.sleep(0)
            await self.hub.settled()


@pytest.fixture
async def world(sim: Simulator, tenant: Tenant, clock: VirtualClock,
                client: httpx.AsyncClient) -> AsyncIterator[World]:
    users = generate_users(sim, tenant, users=40, seed=3, teams_share=1.0, disabled_share=0.0)
    graph = GraphClient(SimTokens(sim), client, base_url="https://sim.test", clock=clock,
                        retry=RetryPolicy(attempts=1))
    sink = BatchingTeamsSink(lambda _p: graph, lambda _p: APP_ID, clock)
    hub = PresenceHub(clock, NoPbx(), sink, lambda _p: CONFIG, workers=64)
    sink.attach(hub)
    people = [Person(n, "pbx", PbxUser(f"u{n}"), user.id) for n, user in enumerate(users, 1)]
    hub.set_people(people)
    task = asyncio.create_task(hub.run())
    yield World(sim, tenant, clock, hub, sink, people)
    task.cancel()
    await sink.aclose()
    with pytest.raises(asyncio.CancelledError):
        await task


def writes(sim: Simulator) -> list[dict[str, object]]:
    return [r for r in sim.faults.requests() if str(r["path"]).endswith("/setPresence")]


async def test_a_burst_of_calls_goes_out_in_batches_of_twenty(world: World) -> None:
    world.calls()
    await world.settle()
    assert world.in_a_call() == 40
    assert world.sink.counters["requests"] == 2
    assert world.sink.counters["batched_writes"] == 40
    assert all(r["batch"] for r in writes(world.sim))


async def test_a_lone_call_goes_out_at_once_as_a_plain_request(world: World) -> None:
    world.calls(world.people[:1])
    await world.settle()
    assert world.in_a_call() == 1
    assert world.sink.counters["batches"] == 0
    assert [r["batch"] for r in writes(world.sim)] == [False]


async def test_inner_429s_wait_for_their_own_retry_after(world: World) -> None:
    world.sim.faults.add_fault(FaultRule(status=429, path_prefix="/v1.0/users/", count=5,
                                         retry_after_s=7))
    world.calls()
    await world.settle(seconds=6)
    assert world.in_a_call() == 35  # the five refused wait as Graph asked
    assert world.sink.counters["throttled"] == 5
    await world.settle(seconds=2)
    assert world.in_a_call() == 40


async def test_an_outage_holds_writes_back_and_the_truth_is_written_when_graph_returns(
    world: World,
) -> None:
    world.sim.faults.add_fault(FaultRule(status=503, path_prefix="/v1.0/users/"))
    world.calls()
    await world.settle(seconds=5)
    assert world.sink.down()
    await world.settle(seconds=115)
    assert world.in_a_call() == 0
    # While down, only a probe now and then reaches Graph (1, 2, 4, ... 60 s apart).
    assert len(writes(world.sim)) <= 40 + 8
    world.sim.faults.clear_faults()
    await world.settle(seconds=61)
    assert world.in_a_call() == 40
    assert not world.sink.down()
    assert world.sink.counters["recoveries"] == 1


async def test_clearing_a_session_that_is_already_gone_is_done(world: World) -> None:
    clear = TeamsAction(Channel.SESSION, None)
    await world.sink.apply(world.people[0], clear)  # alone: a plain request, 404
    await asyncio.gather(*(world.sink.apply(p, clear) for p in world.people[1:4]))  # batched
    assert world.sink.counters["written"] == 4
    assert world.sink.counters["batches"] == 1
