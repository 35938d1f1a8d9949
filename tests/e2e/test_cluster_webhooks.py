"""Webhook notifications on any node (issue 25): Graph posts to a node that does not run
the tenant (a load balancer's choice); that node checks them and hands them to the holder
through PostgreSQL, and a new holder takes what was still waiting when the old one went.

Two services in this process share PostgreSQL and the simulator (webhook mode); Graph's
notification URL is node-b's, as if the load balancer sent everything there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from m365pbx.app import Service
from m365pbx.config import Settings
from m365pbx.core.presence import PbxPresence
from m365pbx.core.status import PartState
from m365pbx.service.leases import StoreLeases
from m365pbx.store import Store, create_engine
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
from tests.e2e.test_teams_to_pbx import PEOPLE, allow_loopback_webhooks, shown
from tests.sim.conftest import TENANT_ID
from tests.store.conftest import new_pg_database, postgres_available  # noqa: F401 (fixtures)

pytestmark = pytest.mark.postgres

WALL = 60.0  # generous wall-time bound: leases renew on real time


@pytest.fixture
def cluster_url(new_pg_database: Any) -> str:  # noqa: F811 - the imported fixture
    """An empty PostgreSQL database the nodes share (each migrates it at start)."""
    return str(new_pg_database())


def node_settings(server: RunningServer, tmp: Path, url: str, node: str, *, port: int,
                  public_port: int) -> Settings:
    """One node's settings: its own port, Graph's notifications sent to `public_port`."""
    own = tmp / node
    own.mkdir()
    return settings_for(server, own, database={"url": url},
                        secrets={"key_file": str(tmp / "secret.key")},
                        listen={"host": "127.0.0.1", "port": port},
                        public_url=f"http://127.0.0.1:{public_port}",
                        # Not the 3 s minimum: two nodes, the simulator and the test share one
                        # event loop here, which a busy CI machine can hold up for seconds.
                        cluster={"enabled": True, "node_id": node, "lease_lifetime": "10s"})


def state(service: Service) -> KeeperState:
    return service.cluster.keepers["contoso"].state


def handoff(service: Service) -> dict[str, int]:
    """The node's part `webhook/handoff` as /healthz and `m365pbx status` show it."""
    part = service.status.get("webhook/handoff")
    assert part is not None and part.state is PartState.OK, part
    return dict(part.counters)


def current(service: Service) -> str:
    pool = service.tenants["contoso"].parts.pool
    assert pool is not None
    record = pool.owners["svc-presence@contoso.com"].current
    assert record is not None
    return record.graph_id


async def stored(service: Service, subscription: str) -> bool:
    async with service.store.transaction() as tx:
        return await tx.subscriptions.get(subscription) is not None


def subscribed(service: Service) -> bool:
    pool = service.tenants["contoso"].parts.pool
    assert pool is not None
    owner = pool.owners["svc-presence@contoso.com"]
    return owner.healthy and len(owner.people) == 2


@contextlib.asynccontextmanager
async def two_nodes(server: RunningServer, sim: Simulator, clock: VirtualClock, tmp: Path,
                    url: str) -> AsyncIterator[tuple[Service, Service, int, Settings]]:
    """node-a holding the tenant, node-b on standby receiving Graph's notifications."""
    allow_loopback_webhooks(sim)
    b_port = free_port()
    a_settings = node_settings(server, tmp, url, "node-a", port=free_port(),
                               public_port=b_port)
    b_settings = node_settings(server, tmp, url, "node-b", port=b_port, public_port=b_port)
    async with contextlib.AsyncExitStack() as nodes:
        a = await nodes.enter_async_context(running(a_settings, clock))
        switchboard(a).replace_users(pbx_users(*PEOPLE))
        # node-b starts once node-a holds the lease: started together, either may win it
        # (on a loaded machine node-b sometimes did).
        await eventually(lambda: state(a) is KeeperState.HOLDING, clock, wall_timeout=WALL)
        b = await nodes.enter_async_context(running(b_settings, clock))
        switchboard(b).replace_users(pbx_users(*PEOPLE))
        await eventually(lambda: subscribed(a), clock, wall_timeout=WALL)
        await eventually(lambda: state(b) is KeeperState.STANDBY, clock, wall_timeout=WALL)
        # The holder stores a new subscription just after Graph created it: notifications
        # before that are unknown to other nodes (the reconciliation repairs them).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WALL
        while not await stored(b, current(a)):
            assert loop.time() < deadline, "node-a never stored its subscription"
            await clock.advance(0.2)
        yield a, b, b_port, b_settings


@contextlib.asynccontextmanager
async def cut_off(node: Service) -> AsyncIterator[None]:
    """The node's lease keeper cannot reach the database: another node takes over."""
    unreachable = Store(create_engine("postgresql+asyncpg://postgres@127.0.0.1:9/x"), node.box)
    node.cluster.keepers["contoso"].port = StoreLeases(unreachable)
    try:
        yield
    finally:
        await unreachable.close()


async def test_notifications_posted_to_a_standby_node_reach_the_holder_and_its_successor(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    cluster_url: str,
) -> None:
    async with two_nodes(sim_server, sim, clock, tmp_path, cluster_url) as (
            a, b, b_port, b_settings):
        polls = a.tenants["contoso"].parts.poller.rounds

        # Graph posts to node-b, which does not run the tenant: it checks the notification
        # against the stored subscription and hands it to node-a, whose PBX side shows it.
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "Busy", "activity": "Busy"}})
        await eventually(lambda: shown(switchboard(a), "anna") is PbxPresence.BUSY, clock,
                         step=0.2, wall_timeout=WALL)
        assert b.receiver.counters["handed_off"] >= 1
        assert b.receiver.counters["accepted"] == 0  # nothing for node-b itself
        assert a.receiver.counters["taken_over"] >= 1
        # Rich notifications: node-b checked their validation tokens, node-a decrypted them.
        assert a.receiver.counters["decrypted"] >= 1 and b.receiver.counters["decrypted"] == 0
        assert a.tenants["contoso"].parts.poller.rounds == polls  # not a poll: the handoff
        await eventually(lambda: handoff(a)["taken"] >= 1 and handoff(a)["backlog"] == 0,
                         clock, wall_timeout=WALL)
        assert handoff(b)["handed_off"] >= 1 and handoff(a)["listening"] == 1
        assert b.hub.people() == []  # node-b still runs nothing of the tenant

        # A forged client state is refused by the receiving node, and nothing is handed on.
        pool = a.tenants["contoso"].parts.pool
        assert pool is not None and pool.owners["svc-presence@contoso.com"].current is not None
        subscription = pool.owners["svc-presence@contoso.com"].current.graph_id
        handed = b.receiver.counters["handed_off"]
        async with httpx.AsyncClient(timeout=60) as http:
            answer = await http.post(
                f"http://127.0.0.1:{b_port}{b_settings.webhook_path}",
                json={"value": [{"subscriptionId": subscription, "clientState": "forged",
                                 "tenantId": TENANT_ID, "changeType": "updated",
                                 "resource": "communications/presence/x"}]})
        assert answer.status_code == 403
        assert b.receiver.counters["forged"] == 1
        assert b.receiver.counters["handed_off"] == handed

        # node-b cannot reach the database: Graph gets a 503 within its 3 s and retries
        # later, instead of a 202 for notifications nobody would ever see.
        secret = pool.owners["svc-presence@contoso.com"].current.client_state
        reachable = b.cluster.handoff.store  # type: ignore[union-attr]
        offline = Store(create_engine("postgresql+asyncpg://postgres@127.0.0.1:9/x"), b.box)
        b.cluster.handoff.store = offline  # type: ignore[union-attr]
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                answer = await http.post(
                    f"http://127.0.0.1:{b_port}{b_settings.webhook_path}",
                    json={"value": [{"subscriptionId": subscription, "clientState": secret,
                                     "tenantId": TENANT_ID, "changeType": "updated",
                                     "resource": "communications/presence/x"}]})
        finally:
            b.cluster.handoff.store = reachable  # type: ignore[union-attr]
            await offline.close()
        assert answer.status_code == 503
        assert "cannot hand notifications to the node running their tenant" in answer.text
        assert b.receiver.counters["handoff_failed"] == 1

        # node-a stops taking what is handed to it (a stuck node), then is cut off from the
        # database: the notifications posted meanwhile wait in the table for the next holder.
        a.cluster._handoff_tenants.clear()  # a node that no longer drains
        handed = b.receiver.counters["handed_off"]
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "DoNotDisturb",
                                      "activity": "DoNotDisturb"}})
        await eventually(lambda: b.receiver.counters["handed_off"] > handed, clock, step=0.2,
                         wall_timeout=WALL)
        await eventually(lambda: handoff(b)["backlog"] >= 1, clock, wall_timeout=WALL)
        assert shown(switchboard(a), "anna") is PbxPresence.BUSY  # nobody took it
        async with cut_off(a):
            # node-b takes the tenant over and, at takeover, drains what was waiting.
            await eventually(lambda: state(b) is KeeperState.HOLDING, clock, wall_timeout=WALL)
            await eventually(lambda: handoff(b)["taken"] >= 1 and handoff(b)["backlog"] == 0,
                             clock, wall_timeout=WALL)
            await eventually(lambda: shown(switchboard(b), "anna") is PbxPresence.DND, clock,
                             step=0.2, wall_timeout=WALL)
            assert handoff(b)["expired"] == 0
            assert b.receiver.counters["taken_over"] >= 1


async def test_handed_notifications_nobody_took_in_time_are_replaced_by_reading_everyone(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    cluster_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    async with two_nodes(sim_server, sim, clock, tmp_path, cluster_url) as (a, b, _, _):
        a.cluster._handoff_tenants.clear()  # a node that no longer drains
        b.cluster.handoff.lifetime = 0.001  # type: ignore[union-attr] # expired as soon as written
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "DoNotDisturb",
                                      "activity": "DoNotDisturb"}})
        await eventually(lambda: b.receiver.counters["handed_off"] >= 1, clock, step=0.2,
                         wall_timeout=WALL)
        async with cut_off(a):
            await eventually(lambda: state(b) is KeeperState.HOLDING, clock, wall_timeout=WALL)
            # The new holder never applies the stale notification: it drops it, says so, and
            # reads the tenant's people back from Graph, which shows the change all the same.
            await eventually(lambda: handoff(b)["expired"] >= 1 and handoff(b)["backlog"] == 0,
                             clock, wall_timeout=WALL)
            assert handoff(b)["taken"] == 0
            await eventually(lambda: shown(switchboard(b), "anna") is PbxPresence.DND, clock,
                             step=0.2, wall_timeout=WALL)
            readback = b.tenants["contoso"].parts.readback
            await eventually(lambda: readback.requests >= 1, clock, step=0.2, wall_timeout=WALL)
    assert any("expired before this node took them: reading all its people back" in r.message
               for r in caplog.records)
