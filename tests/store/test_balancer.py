"""The balancer (issue 25) on a real store: the roll call, the plan applied to the keepers,
a failed roll call shown with its reason. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from m365pbx.clock import SystemClock
from m365pbx.core.leases import Lease, LeaseTiming
from m365pbx.core.status import PartState
from m365pbx.service.balance import StoreRollCall, balance_status
from m365pbx.service.leases import StoreLeases
from m365pbx.store import SecretBox, Store, create_engine
from m365pbx.sync.balance import Balancer
from m365pbx.sync.leases import KeeperState, LeaseKeeper

TIMING = LeaseTiming(lifetime=3.0)
JOBS = ["tenant/contoso", "tenant/fabrikam"]
WAIT = 30.0


async def idle(lease: Lease) -> None:
    await asyncio.Event().wait()


async def until(condition: Callable[[], bool]) -> None:
    """Poll (bounded): the keepers' and the balancer's states change on real time."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


async def test_a_lone_node_takes_every_job_shows_a_failed_roll_call_and_leaves_cleanly(
    store: Store, box: SecretBox,
) -> None:
    keepers = {job: LeaseKeeper(StoreLeases(store), job, "gw-a", idle, SystemClock(),
                                timing=TIMING) for job in JOBS}
    balancer = Balancer(StoreRollCall(store, TIMING.lifetime), "gw-a", keepers, SystemClock(),
                        timing=TIMING)
    (status,) = balance_status(balancer)
    assert status.state is PartState.STARTING
    tasks = [asyncio.create_task(k.run()) for k in keepers.values()]
    tasks.append(asyncio.create_task(balancer.run()))
    unreachable = Store(create_engine("postgresql+asyncpg://postgres@127.0.0.1:9/x"), box)
    try:
        await until(lambda: all(k.state is KeeperState.HOLDING for k in keepers.values()))
        await until(lambda: balancer.plan is not None and len(balancer.plan.held) == 2)
        (status,) = balance_status(balancer)
        assert status.state is PartState.OK
        assert {k: status.counters[k] for k in ("nodes", "members", "share", "held")} == {
            "nodes": 1, "members": 1, "share": 2, "held": 2}
        # The roll call fails: shown with its reason; nothing new is taken meanwhile.
        balancer.port = StoreRollCall(unreachable, TIMING.lifetime)
        await until(lambda: balancer.last_error is not None)
        (status,) = balance_status(balancer)
        assert status.state is PartState.DEGRADED
        assert "cannot reach the database for the roll call" in (status.error or "")
        assert status.fix is not None and balancer.plan is not None
        assert balancer.plan.take == frozenset()
        balancer.port = StoreRollCall(store, TIMING.lifetime)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await unreachable.close()
    # A clean stop: the node marked itself gone, its keepers released their leases.
    async with store.transaction() as tx:
        (row,) = await tx.nodes.all()
        now = await tx.leases.database_now()
        leases = await tx.leases.all()
    assert row.node == "gw-a" and row.stopped_at is not None
    assert [lease.job for lease in leases] == JOBS
    assert all(lease.expires_at <= now for lease in leases)
