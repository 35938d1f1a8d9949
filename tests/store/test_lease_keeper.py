"""The lease keeper (issue 25): work runs on one node at a time, and stops at once when the
node cannot renew. Real stores on SQLite and PostgreSQL, separate engines per node."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

from m365pbx.clock import SystemClock
from m365pbx.core.leases import Lease, LeaseTiming
from m365pbx.core.status import PartState, PartStatus
from m365pbx.service.leases import (
    Ownership,
    StoreLeases,
    lease_statuses,
    lease_store_for,
    owned_by_lease,
)
from m365pbx.store import SecretBox, Store, create_engine, upgrade_database
from m365pbx.sync.leases import KeeperState, LeaseKeeper
from tests.store.conftest import PG_HOST, PG_PORT, PG_USER
from tests.store.test_leases import expire

JOB = "tenant/contoso/presence"
TIMING = LeaseTiming(lifetime=3.0)
WAIT = 30.0  # generous: the machine may be busy; nothing here waits for a fixed time


@dataclass
class Node:
    """One node: its own store (engine) and keeper, and what its work saw."""

    keeper: LeaseKeeper
    store: Store
    working: asyncio.Event = field(default_factory=asyncio.Event)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    lost: list[tuple[str, list[PartStatus]]] = field(default_factory=list)
    lost_event: asyncio.Event = field(default_factory=asyncio.Event)
    epochs: list[int] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


def make_node(url: str, box: SecretBox, name: str) -> Node:
    store = Store(create_engine(url), box)
    node: Node

    async def work(lease: Lease) -> None:
        node.epochs.append(lease.epoch)
        node.stopped.clear()
        node.working.set()
        try:
            await asyncio.Event().wait()
        finally:
            node.working.clear()
            node.stopped.set()

    def on_lost(reason: str) -> None:
        node.lost.append((reason, lease_statuses([node.keeper])))
        node.lost_event.set()

    keeper = LeaseKeeper(StoreLeases(store), JOB, name, work, SystemClock(), timing=TIMING,
                         on_lost=on_lost)
    node = Node(keeper, store)
    return node


@asynccontextmanager
async def running(*nodes: Node) -> AsyncIterator[None]:
    for node in nodes:
        node.task = asyncio.create_task(node.keeper.run())
    try:
        yield
    finally:
        for node in nodes:
            if node.task is not None:
                node.task.cancel()
        await asyncio.gather(*(n.task for n in nodes if n.task), return_exceptions=True)
        await asyncio.gather(*(n.store.close() for n in nodes))


async def until(keeper: LeaseKeeper, condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():
            await keeper.changed.wait()


async def test_only_one_node_works_and_the_other_stands_by(database_url: str, store: Store,
                                                           box: SecretBox) -> None:
    a, b = make_node(database_url, box, "node-a"), make_node(database_url, box, "node-b")
    async with running(a):
        await asyncio.wait_for(a.working.wait(), WAIT)
        async with running(b):
            await until(b.keeper, lambda: b.keeper.state is KeeperState.STANDBY)
            assert not b.working.is_set() and b.epochs == []
            assert b.keeper.other is not None and b.keeper.other.holder == "node-a"
            held, standby = lease_statuses([a.keeper, b.keeper])
            assert (held.part, held.state, held.counters["held"]) == (f"lease/{JOB}",
                                                                     PartState.OK, 1)
            assert (standby.state, standby.counters["held"], standby.counters["epoch"]) == (
                PartState.OK, 0, 1)


async def test_a_stopped_holder_releases_and_the_other_takes_over(database_url: str,
                                                                  store: Store,
                                                                  box: SecretBox) -> None:
    a, b = make_node(database_url, box, "node-a"), make_node(database_url, box, "node-b")
    a_task = asyncio.create_task(a.keeper.run())
    try:
        await asyncio.wait_for(a.working.wait(), WAIT)
        async with running(b):
            await until(b.keeper, lambda: b.keeper.state is KeeperState.STANDBY)
            a_task.cancel()  # node-a stops (a restart, a shutdown)
            await asyncio.gather(a_task, return_exceptions=True)
            assert a.stopped.is_set() and a.keeper.state is KeeperState.STOPPED
            # node-b takes over at its next try, not only after the expiry.
            await asyncio.wait_for(b.working.wait(), WAIT)
            assert b.epochs == [2]
    finally:
        a_task.cancel()
        await asyncio.gather(a_task, return_exceptions=True)
        await a.store.close()


async def test_a_refused_renewal_stops_the_work_at_once_and_says_why(
        database_url: str, store: Store, box: SecretBox) -> None:
    a = make_node(database_url, box, "node-a")
    async with running(a):
        await asyncio.wait_for(a.working.wait(), WAIT)
        # node-a is stuck past its expiry as far as the database knows; node-b takes over.
        await expire(store, JOB)
        taken = await StoreLeases(store).acquire(JOB, "node-b", 60)
        assert taken is not None and taken.epoch == 2
        await asyncio.wait_for(a.lost_event.wait(), WAIT)
        assert a.stopped.is_set() and not a.working.is_set()
        reason, statuses = a.lost[0]
        assert reason == "renewal refused: 'node-b' took the job over at epoch 2 (ours was 1)"
        assert statuses[0].state is PartState.DEGRADED and statuses[0].error == reason
        assert statuses[0].counters["losses"] == 1
        # Afterwards it stands by: node-b holds the job.
        await until(a.keeper, lambda: a.keeper.state is KeeperState.STANDBY)
        assert a.epochs == [1]


async def test_a_node_may_act_only_while_holding_and_never_past_its_deadline(
        database_url: str, store: Store, box: SecretBox) -> None:
    a, b = make_node(database_url, box, "node-a"), make_node(database_url, box, "node-b")
    async with running(a):
        await asyncio.wait_for(a.working.wait(), WAIT)
        assert a.keeper.may_act()
        async with running(b):
            await until(b.keeper, lambda: b.keeper.state is KeeperState.STANDBY)
            assert not b.keeper.may_act()
        # The whole process stands still past the deadline (SIGSTOP, a VM migration): the
        # moment it runs again, before its keeper has noticed anything, it may not act
        # (SIP publications and Asterisk writes ask this before each request).
        time.sleep(TIMING.act_until(0.0) + 0.2)  # noqa: ASYNC251 - a pause of the whole loop
        assert a.keeper.state is KeeperState.HOLDING and not a.keeper.may_act()
        await asyncio.wait_for(a.lost_event.wait(), WAIT)
        assert "ran out while this node was not running" in a.lost[0][0]
        assert not a.keeper.may_act()


@pytest.fixture
def own_pg_url(new_pg_database: Callable[[], str]) -> str:
    """A migrated PostgreSQL database of this test's own (it is cut off from its node)."""
    url = new_pg_database()
    asyncio.run(upgrade_database(url))
    return url


@pytest.mark.postgres
async def test_a_node_that_loses_the_database_stops_before_its_lease_can_expire(
        own_pg_url: str, box: SecretBox, caplog: pytest.LogCaptureFixture) -> None:
    url = own_pg_url
    name = make_url(url).database
    a = make_node(url, box, "node-a")
    admin = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER,
                                  database="postgres", timeout=5)
    try:
        async with running(a):
            await asyncio.wait_for(a.working.wait(), WAIT)
            # The database goes away for this node: no new connections, the old ones cut.
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = $1", name)
            await asyncio.wait_for(a.lost_event.wait(), WAIT)
            assert a.stopped.is_set()
            reason, statuses = a.lost[0]
            assert reason.startswith("could not renew the lease (epoch 1) in time")
            assert statuses[0].state is PartState.DEGRADED
            assert "stopped working on tenant/contoso/presence" in caplog.text
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def test_a_keeper_takes_only_when_let_and_gives_up_when_asked(
        database_url: str, store: Store, box: SecretBox) -> None:
    a, b = make_node(database_url, box, "node-a"), make_node(database_url, box, "node-b")
    allowed = {"node-a": False, "node-b": False}
    for node in (a, b):
        node.keeper.may_take = lambda job, name=node.keeper.node: allowed[name]
    async with running(a, b):
        await until(a.keeper, lambda: a.keeper.state is KeeperState.STANDBY)
        assert not a.working.is_set() and a.epochs == []  # the job is free, but not let
        allowed["node-a"] = True
        a.keeper.wake()
        await asyncio.wait_for(a.working.wait(), WAIT)
        # Asked to give the job up (for balance): the work stops, the lease is released
        # and node-a stands by; node-b, let now, takes it at once under a new epoch.
        allowed["node-a"], allowed["node-b"] = False, True
        a.keeper.give_up()
        await until(a.keeper, lambda: a.keeper.state is KeeperState.STANDBY)
        assert a.stopped.is_set() and a.keeper.handovers == 1 and a.keeper.losses == 0
        b.keeper.wake()
        await asyncio.wait_for(b.working.wait(), WAIT)
        assert b.epochs == [2]
        (shown,) = lease_statuses([a.keeper])
        assert (shown.state, shown.error, shown.counters["given_up"]) == (PartState.OK, None, 1)
        assert not a.working.is_set()


async def test_renewals_go_on_while_the_node_s_shared_pool_is_taken(
        database_url: str, store: Store, box: SecretBox) -> None:
    """A node busy writing (every pooled connection in a long transaction, as a takeover of
    thousands of people does) still renews: the lease has connections of its own."""
    shared = Store(create_engine(database_url, pool_size=2, max_overflow=0, pool_timeout=60),
                   box)
    ownership = Ownership(shared, JOB, lease_store=lease_store_for(database_url, box))
    started = asyncio.Event()

    async def run() -> None:
        started.set()
        await asyncio.Event().wait()

    keeper = owned_by_lease(run, ownership, "node-a", SystemClock(), lifetime=3.0)
    task = asyncio.create_task(keeper.run())
    release = asyncio.Event()

    async def long_write() -> None:
        async with shared.transaction() as tx:
            await tx.leases.current(JOB)  # a statement: the connection is checked out now
            await release.wait()

    writers = [asyncio.create_task(long_write()) for _ in range(2)]
    try:
        await asyncio.wait_for(started.wait(), WAIT)
        await asyncio.sleep(0.5)  # the writers hold both pooled connections now
        deadline = time.monotonic() + 3 * TIMING.lifetime
        while time.monotonic() < deadline:  # three lifetimes: renewed every second
            assert keeper.state is KeeperState.HOLDING
            await asyncio.sleep(0.1)
    finally:
        release.set()
        await asyncio.gather(*writers, return_exceptions=True)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ownership.lease_store.close()
        await shared.close()
