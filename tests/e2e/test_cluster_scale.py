"""Three real nodes on one PostgreSQL database behind a load balancer (issue 25): 2,000
people over 4 service accounts by webhooks and a second tenant by polling, a steady stream
of changes in Teams. kill -9 the node running the webhook tenant: another takes it over,
resumes the 4 subscriptions without ever making one twice (the simulator's 409 is never
seen), and the PBX side converges to Teams. A rolling restart of all three nodes under
the same stream loses nothing either."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from m365sim.server import run_server
from tests.e2e.balancer import Balancer
from tests.e2e.cluster_rig import Node, Rig, Scene, change_stream, make_scene, until
from tests.store.conftest import new_pg_database, postgres_available  # noqa: F401 (fixtures)

pytestmark = pytest.mark.postgres

PEOPLE = 2000
WALL = 300.0  # generous: start-ups of 2,000 people on a busy 2-core machine
CONTOSO, FABRIKAM = "tenant/contoso", "tenant/fabrikam"


@contextlib.asynccontextmanager
async def installation(scene: Scene, tmp: Path, url: str) -> AsyncIterator[tuple[Rig, Balancer]]:
    """The simulator served, a balancer, and three nodes' configurations (none started)."""
    balancer = Balancer([])
    await balancer.start()
    async with run_server(scene.sim, cert_dir=tmp / "tls") as server:
        rig = Rig(scene, server, url, tmp, public_port=balancer.port)
        for name in ("node-a", "node-b", "node-c"):
            rig.add_node(name)
        balancer.ports = [node.port for node in rig.nodes]
        try:
            yield rig, balancer
        finally:
            await rig.stop()
            await balancer.stop()


@pytest.fixture
def cluster_url(new_pg_database: Any) -> str:  # noqa: F811 - the imported fixture
    """An empty PostgreSQL database the nodes share (each migrates it at start)."""
    return str(new_pg_database())


async def subscribed(rig: Rig) -> bool:
    """Whether the holder of the webhook tenant has every account's subscription up."""
    node = await rig.holder(CONTOSO)
    if node is None:
        return False
    health = await node.health()
    if health is None:
        return False
    states = {p["part"]: p["state"] for p in health["parts"]}
    return all(states.get(f"tenant/contoso/subscription/{upn}") == "ok"
               for upn in rig.scene.accounts)


async def converged(rig: Rig) -> bool:
    """Whether every person's PBX side shows what Teams shows."""
    return not await rig.differences()


async def answers(node: Node) -> bool:
    """Whether the node is up and knows who holds the webhook tenant."""
    part = await node.part(f"lease/{CONTOSO}")
    return part is not None and part["state"] == "ok" and part["counters"]["epoch"] > 0


async def streaming(scene: Scene, rng: random.Random, changed: list[int]) -> asyncio.Task[Any]:
    """A steady stream of changes in Teams, 20 a second."""
    return asyncio.create_task(change_stream(scene, 20, rng, changed))


async def stopped(task: asyncio.Task[Any]) -> None:
    """Cancel a stream and wait for it."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_kill_the_holder_and_restart_every_node_under_a_stream_of_changes(
    tmp_path: Path, cluster_url: str,
) -> None:
    scene = make_scene(PEOPLE, polled=100)
    assert len(scene.accounts) == 4
    rng = random.Random(25)
    changed = [0]
    async with installation(scene, tmp_path, cluster_url) as (rig, balancer):
        first, *others = rig.nodes
        await first.start()
        await until(lambda: first.holds(CONTOSO), "node-a holds the webhook tenant", wall=WALL)
        await rig.create_api_key()
        for node in others:
            await node.start()
        for node in others:
            await until(lambda n=node: answers(n), f"{node.name} is up", wall=WALL)  # type: ignore[misc]
        await until(lambda: subscribed(rig), "4 subscriptions up", wall=WALL)
        print(f"subscribed at {datetime.now(UTC).time()}; conflicts so far: {scene.conflicts}")
        await until(lambda: converged(rig), "the PBX side shows Teams", wall=WALL)

        # kill -9 the holder under a steady stream of changes.
        stream = await streaming(scene, rng, changed)
        await asyncio.sleep(5)
        holder = await rig.holder(CONTOSO)
        assert holder is not None
        print(f"kill -9 {holder.name} at {datetime.now(UTC).time()}")
        await holder.kill()
        await until(lambda: _held_by_another(rig, holder), "another node takes the tenant over",
                    wall=WALL)
        await until(lambda: subscribed(rig), "the subscriptions resumed", wall=WALL)
        await asyncio.sleep(10)
        await stopped(stream)
        await until(lambda: converged(rig), "the PBX side converges after the takeover",
                    wall=WALL)
        assert scene.conflicts == []  # no subscription was ever made twice
        await holder.start()
        await until(lambda: answers(holder), f"{holder.name} is back", wall=WALL)

        # A rolling restart of every node, under the stream.
        stream = await streaming(scene, rng, changed)
        for node in rig.nodes:
            await node.stop()
            await node.start()
            await until(lambda n=node: answers(n), f"{node.name} restarted", wall=WALL)  # type: ignore[misc]
            await until(lambda: subscribed(rig), "the subscriptions are up", wall=WALL)
        await stopped(stream)
        await until(lambda: converged(rig), "the PBX side converges after the rolling restart",
                    wall=WALL)
        assert scene.conflicts == []
        assert changed[0] > 200  # the stream did run
        assert balancer.refused > 0  # and notifications went around the nodes that were down


async def _held_by_another(rig: Rig, gone: Node) -> bool:
    holder = await rig.holder(CONTOSO)
    return holder is not None and holder is not gone
