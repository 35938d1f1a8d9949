"""Real `m365pbx serve` processes with `cluster.transport: nats` (issue 25): Graph posts
to node-b only; node-a, the holder, pulls what node-b publishes to JetStream; paused with
SIGSTOP and then killed with -9, it leaves what was published meanwhile in the stream (or
pulled and never acked, delivered again after the ack wait), and node-b, taking the tenant
over, takes it. NATS with JetStream on 127.0.0.1:4222 (tests/nats_server.py)."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

from m365sim.clock import VirtualClock
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import free_port, in_teams
from tests.e2e.test_cluster_processes import (  # noqa: F401 (fixtures)
    ACCOUNT,
    HANDOFF,
    Node,
    cluster_url,
    holds,
    stands_by,
    until,
)
from tests.e2e.test_teams_to_pbx import allow_loopback_webhooks
from tests.nats_server import NATS_URL, nats_available, nats_prefix  # noqa: F401 (fixtures)
from tests.store.conftest import new_pg_database, postgres_available  # noqa: F401 (fixtures)

pytestmark = pytest.mark.postgres


async def test_kill_the_holder_and_the_next_one_takes_what_waits_in_jetstream(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    cluster_url: str, nats_prefix: str,  # noqa: F811 - the imported fixtures
) -> None:
    allow_loopback_webhooks(sim)
    clock.set(datetime.now(UTC))  # the nodes check validation tokens on their own clocks
    nats = {"transport": "nats", "nats_url": NATS_URL, "nats_prefix": nats_prefix}
    b_port = free_port()
    a = Node("node-a", tmp_path, sim_server, cluster_url, webhooks_to=b_port, cluster=nats)
    b = Node("node-b", tmp_path, sim_server, cluster_url, port=b_port, webhooks_to=b_port,
             cluster=nats)
    try:
        await a.start()
        await until(lambda: holds(a, 1), "node-a holds the tenant")
        await b.start()
        await until(lambda: stands_by(b), "node-b stands by")

        async def subscribed() -> bool:
            part = await a.part(f"tenant/contoso/subscription/{ACCOUNT}")
            return part is not None and part["state"] == "ok"

        await until(subscribed, "node-a's presence subscription is up")

        async def counted(node: Node, name: str, at_least: int) -> bool:
            return (await node.counter(HANDOFF, name) or 0) >= at_least

        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "Busy", "activity": "Busy"}})
        await until(lambda: counted(b, "handed_off", 1), "node-b publishes the notification")
        await until(lambda: counted(a, "taken", 1), "node-a pulls it")

        # node-a paused: what node-b publishes now is not applied by anyone...
        a.signal(signal.SIGSTOP)
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "DoNotDisturb",
                                      "activity": "DoNotDisturb"}})
        await until(lambda: counted(b, "handed_off", 2), "node-b publishes the next one")
        await until(lambda: counted(b, "backlog", 1), "it waits in the stream")
        # ...and after kill -9, the node taking the tenant over pulls it.
        a.signal(signal.SIGKILL)
        await until(lambda: holds(b, 2), "node-b takes the tenant over")
        await until(lambda: counted(b, "taken", 1), "node-b takes what waited")
        await until(lambda: counted(b, "pulling", 1), "node-b pulls")
        assert await b.counter(HANDOFF, "expired") == 0
        part = await b.part(HANDOFF)
        assert part is not None and part["state"] == "ok", part
        await until(lambda: _backlog_empty(b), "nothing is left in the stream")
    finally:
        await asyncio.gather(*(node.stop() for node in (a, b)))


async def _backlog_empty(node: Node) -> bool:
    return await node.counter(HANDOFF, "backlog") == 0
