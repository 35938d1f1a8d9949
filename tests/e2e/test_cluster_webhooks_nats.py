"""Webhook notifications on any node through NATS JetStream (`cluster.transport: nats`,
issue 25): Graph posts to a node that does not run the tenant; that node checks them and
publishes them to the tenant's stream, acknowledged before its 202, and the holder pulls
them with the tenant's durable consumer; a new holder continues where the old one stopped.

Two services in this process share PostgreSQL, the simulator and the NATS server on
127.0.0.1:4222 (JetStream); Graph's notification URL is node-b's. Each test has its own
stream prefix and deletes its streams afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from m365pbx.app import Service
from m365pbx.config import Settings
from m365pbx.core.presence import PbxPresence
from m365pbx.core.status import PartState
from m365pbx.service.handoff_nats import NatsHandoff
from m365pbx.sync.leases import KeeperState
from m365sim.clock import VirtualClock
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import (
    eventually,
    free_port,
    in_teams,
    pbx_users,
    running,
    settings_for,
    switchboard,
)
from tests.e2e.test_cluster_webhooks import current, cut_off, state, stored, subscribed
from tests.e2e.test_teams_to_pbx import PEOPLE, allow_loopback_webhooks, shown
from tests.nats_server import NATS_URL, nats_available, nats_prefix  # noqa: F401 (fixtures)
from tests.sim.conftest import TENANT_ID
from tests.store.conftest import new_pg_database, postgres_available  # noqa: F401 (fixtures)

pytestmark = pytest.mark.postgres

WALL = 60.0


@pytest.fixture
def cluster_url(new_pg_database: Any) -> str:  # noqa: F811 - the imported fixture
    """An empty PostgreSQL database the nodes share (each migrates it at start)."""
    return str(new_pg_database())


def node_settings(server: RunningServer, tmp: Path, url: str, node: str, *, port: int,
                  public_port: int, prefix: str, lifetime: str) -> Settings:
    own = tmp / node
    own.mkdir()
    return settings_for(server, own, database={"url": url},
                        secrets={"key_file": str(tmp / "secret.key")},
                        listen={"host": "127.0.0.1", "port": port},
                        public_url=f"http://127.0.0.1:{public_port}",
                        cluster={"enabled": True, "node_id": node, "lease_lifetime": "3s",
                                 "transport": "nats", "nats_url": NATS_URL,
                                 "nats_prefix": prefix, "handoff_lifetime": lifetime})


def part(service: Service) -> tuple[PartState, str | None, dict[str, int]]:
    found = service.status.get("webhook/handoff")
    assert found is not None
    return found.state, found.error, dict(found.counters)


def handoff(service: Service) -> dict[str, int]:
    """The node's part `webhook/handoff`, which must be ok."""
    state_, error, counters = part(service)
    assert state_ is PartState.OK, error
    return counters


def transport(service: Service) -> NatsHandoff:
    found = service.cluster.handoff
    assert isinstance(found, NatsHandoff)
    return found


async def until_waiting(service: Service, prefix: str, check: Callable[[int], bool]) -> None:
    """Wait (real time, bounded) until the tenant's stream holds a number of messages."""
    js = transport(service).js
    assert js is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WALL
    while not check((await js.stream_info(f"{prefix}_handoff_contoso")).state.messages):
        assert loop.time() < deadline, "the stream never held the expected messages"
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def two_nodes(server: RunningServer, sim: Simulator, clock: VirtualClock, tmp: Path,
                    url: str, prefix: str, *, lifetime: str = "2m"
                    ) -> AsyncIterator[tuple[Service, Service, int, Settings]]:
    """node-a holding the tenant, node-b on standby receiving Graph's notifications."""
    allow_loopback_webhooks(sim)
    b_port = free_port()
    a_settings = node_settings(server, tmp, url, "node-a", port=free_port(),
                               public_port=b_port, prefix=prefix, lifetime=lifetime)
    b_settings = node_settings(server, tmp, url, "node-b", port=b_port, public_port=b_port,
                               prefix=prefix, lifetime=lifetime)
    async with contextlib.AsyncExitStack() as nodes:
        a = await nodes.enter_async_context(running(a_settings, clock))
        switchboard(a).replace_users(pbx_users(*PEOPLE))
        await eventually(lambda: state(a) is KeeperState.HOLDING, clock, wall_timeout=WALL)
        b = await nodes.enter_async_context(running(b_settings, clock))
        switchboard(b).replace_users(pbx_users(*PEOPLE))
        await eventually(lambda: subscribed(a), clock, wall_timeout=WALL)
        await eventually(lambda: state(b) is KeeperState.STANDBY, clock, wall_timeout=WALL)
        await eventually(lambda: handoff(b)["listening"] == 1, clock, wall_timeout=WALL)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WALL
        while not await stored(b, current(a)):
            assert loop.time() < deadline, "node-a never stored its subscription"
            await clock.advance(0.2)
        yield a, b, b_port, b_settings


async def test_notifications_through_jetstream_reach_the_holder_and_its_successor(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    cluster_url: str, nats_prefix: str,  # noqa: F811 - the imported fixture
) -> None:
    async with two_nodes(sim_server, sim, clock, tmp_path, cluster_url, nats_prefix) as (
            a, b, b_port, b_settings):
        polls = a.tenants["contoso"].parts.poller.rounds
        # Graph posts to node-b: checked there, published to JetStream, pulled by node-a.
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "Busy", "activity": "Busy"}})
        await eventually(lambda: shown(switchboard(a), "anna") is PbxPresence.BUSY, clock,
                         step=0.2, wall_timeout=WALL)
        assert b.receiver.counters["handed_off"] >= 1 and b.receiver.counters["accepted"] == 0
        assert a.receiver.counters["taken_over"] >= 1
        assert a.receiver.counters["decrypted"] >= 1 and b.receiver.counters["decrypted"] == 0
        assert a.tenants["contoso"].parts.poller.rounds == polls  # not a poll: the handoff
        await eventually(lambda: handoff(a)["taken"] >= 1 and handoff(a)["backlog"] == 0,
                         clock, wall_timeout=WALL)
        assert handoff(b)["handed_off"] >= 1 and handoff(a)["pulling"] == 1
        assert handoff(b)["pulling"] == 0 and b.hub.people() == []

        # NATS out of reach for node-b: Graph gets a 503 within its 3 s, and the part says why.
        pool = a.tenants["contoso"].parts.pool
        assert pool is not None and pool.owners["svc-presence@contoso.com"].current is not None
        subscription = pool.owners["svc-presence@contoso.com"].current.graph_id
        secret = pool.owners["svc-presence@contoso.com"].current.client_state
        handoff_b = transport(b)
        assert handoff_b.client is not None
        await handoff_b.client.close()
        handoff_b.url = "nats://127.0.0.1:9"  # nothing listens there
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.post(
                f"http://127.0.0.1:{b_port}{b_settings.webhook_path}",
                json={"value": [{"subscriptionId": subscription, "clientState": secret,
                                 "tenantId": TENANT_ID, "changeType": "updated",
                                 "resource": "communications/presence/x"}]})
        assert answer.status_code == 503
        assert "cannot hand notifications to the node running their tenant" in answer.text
        assert b.receiver.counters["handoff_failed"] == 1
        await eventually(lambda: part(b)[0] is PartState.DEGRADED
                         and "cannot connect to the NATS server" in (part(b)[1] or ""),
                         clock, wall_timeout=WALL)
        handoff_b.url = NATS_URL  # back: it reconnects at its next round
        handoff_b.wake()
        await eventually(lambda: part(b)[0] is PartState.OK, clock, step=0.5, wall_timeout=WALL)

        # node-a stops pulling (a stuck node), then is cut off from the database: what is
        # published meanwhile waits in the stream for the next holder.
        a.cluster._handoff_tenants.clear()
        transport(a).wake()
        await eventually(lambda: handoff(a)["pulling"] == 0, clock, wall_timeout=WALL)
        handed, taken = b.receiver.counters["handed_off"], handoff(a)["taken"]
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "DoNotDisturb",
                                      "activity": "DoNotDisturb"}})
        await eventually(lambda: b.receiver.counters["handed_off"] > handed, clock, step=0.2,
                         wall_timeout=WALL)
        # Asked of the server on real time: the virtual clock must not run on here (node-a's
        # reconciliation poll would read the change from Graph).
        await until_waiting(b, nats_prefix, lambda count: count >= 1)
        assert shown(switchboard(a), "anna") is PbxPresence.BUSY  # nobody took it
        assert handoff(a)["taken"] == taken
        async with cut_off(a):
            await eventually(lambda: state(b) is KeeperState.HOLDING, clock, wall_timeout=WALL)
            await eventually(lambda: handoff(b)["taken"] >= 1 and handoff(b)["backlog"] == 0,
                             clock, step=0.5, wall_timeout=WALL)
            await eventually(lambda: shown(switchboard(b), "anna") is PbxPresence.DND, clock,
                             step=0.2, wall_timeout=WALL)
            assert handoff(b)["expired"] == 0
            assert b.receiver.counters["taken_over"] >= 1


async def test_expired_messages_are_never_applied_and_the_holder_reads_everyone(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    cluster_url: str, nats_prefix: str,  # noqa: F811 - the imported fixture
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The stream's max age is the handoff lifetime: 2 s here, on the NATS server's clock.
    async with two_nodes(sim_server, sim, clock, tmp_path, cluster_url, nats_prefix,
                         lifetime="2s") as (a, b, _, _):
        a.cluster._handoff_tenants.clear()
        transport(a).wake()
        await eventually(lambda: handoff(a)["pulling"] == 0, clock, wall_timeout=WALL)
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "DoNotDisturb",
                                      "activity": "DoNotDisturb"}})
        await eventually(lambda: b.receiver.counters["handed_off"] >= 1, clock, step=0.2,
                         wall_timeout=WALL)
        # The server drops the message after its max age (asked, not the 5 s backlog count,
        # so that the message is gone before node-b can take the tenant over).
        await until_waiting(b, nats_prefix, lambda count: count == 0)
        assert handoff(b)["taken"] == 0 and handoff(a)["taken"] == 0
        async with cut_off(a):
            await eventually(lambda: state(b) is KeeperState.HOLDING, clock, wall_timeout=WALL)
            # The gap in the tenant's sequence is an expiry: never applied, logged, and the
            # people are read back from Graph, which shows the change all the same.
            await eventually(lambda: handoff(b)["expired"] >= 1, clock, step=0.5,
                             wall_timeout=WALL)
            assert handoff(b)["taken"] == 0
            await eventually(lambda: shown(switchboard(b), "anna") is PbxPresence.DND, clock,
                             step=0.2, wall_timeout=WALL)
            readback = b.tenants["contoso"].parts.readback
            await eventually(lambda: readback.requests >= 1, clock, step=0.2, wall_timeout=WALL)
    assert any("expired before this node took them: reading all its people back" in r.message
               for r in caplog.records)
