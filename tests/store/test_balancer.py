"""The balancer (issue 25) on a real store: the roll call, the plan applied to the keepers,
a failed roll call shown with its reason, tenants weighed by their people. SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from m365pbx.clock import SystemClock
from m365pbx.core.leases import Lease, LeaseTiming
from m365pbx.core.status import PartState
from m365pbx.service.balance import StoreRollCall, balance_status, cluster_view
from m365pbx.service.leases import StoreLeases
from m365pbx.store import (
    MatchStatus,
    PbxConnectionSpec,
    PersonRecord,
    SecretBox,
    Store,
    TenantSpec,
    create_engine,
)
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


SIZES = {"big": 120, "north": 3, "south": 3, "east": 3, "west": 3}  # matched people


async def people(store: Store, sizes: dict[str, int]) -> None:
    """Each tenant with its matched people on a PBX connection of its own, and people not
    matched (PBX users without a Teams user, Teams users without a phone): they weigh
    nothing, the holder carries no presence for them."""
    async with store.transaction() as tx:
        for name, size in sizes.items():
            tenant = await tx.tenants.create(TenantSpec(name, f"{name}-id"))
            pbx = await tx.pbx_connections.create(PbxConnectionSpec(f"pbx-{name}", "api"))
            await tx.people.replace_for_connection(pbx.id, [
                *(PersonRecord(MatchStatus.MATCHED, f"{name} {i}", pbx_key=f"{i}",
                               tenant_id=tenant.id, teams_user_id=f"{name}-{i}", rule="email")
                  for i in range(size)),
                *(PersonRecord(MatchStatus.UNMATCHED, f"nobody {i}", pbx_key=f"x{i}",
                               reason="no Teams user") for i in range(2)),
                *(PersonRecord(MatchStatus.UNMATCHED, f"no phone {i}", tenant_id=tenant.id,
                               teams_user_id=f"{name}-x{i}", reason="no PBX user")
                  for i in range(5))])


def node(store: Store, name: str) -> tuple[dict[str, LeaseKeeper], Balancer]:
    """A node's keepers of every tenant's job, and its balancer (not running yet)."""
    keepers = {f"tenant/{t}": LeaseKeeper(StoreLeases(store), f"tenant/{t}", name, idle,
                                          SystemClock(), timing=TIMING) for t in SIZES}
    return keepers, Balancer(StoreRollCall(store, TIMING.lifetime), name, keepers,
                             SystemClock(), timing=TIMING)


def holding(keepers: dict[str, LeaseKeeper]) -> set[str]:
    return {job for job, k in keepers.items() if k.state is KeeperState.HOLDING}


async def test_a_big_tenant_ends_up_alone_on_one_node_and_the_small_ones_on_the_other(
    store: Store,
) -> None:
    await people(store, SIZES)
    async with store.transaction() as tx:
        assert await tx.people.matched_by_tenant() == SIZES
    a_keepers, a = node(store, "gw-a")
    b_keepers, b = node(store, "gw-b")
    tasks = [asyncio.create_task(k.run()) for k in a_keepers.values()]
    tasks.append(asyncio.create_task(a.run()))
    try:
        # Alone, gw-a takes every tenant.
        await until(lambda: holding(a_keepers) == set(a_keepers))
        tasks += [asyncio.create_task(k.run()) for k in b_keepers.values()]
        tasks.append(asyncio.create_task(b.run()))
        # gw-b settles, and gw-a gives the small tenants up, one per renewal interval:
        # counting jobs would have left 3 of the 5 (the big one with two more) on gw-a.
        await until(lambda: holding(a_keepers) == {"tenant/big"}
                    and holding(b_keepers) == set(b_keepers) - {"tenant/big"})
        assert sum(k.handovers for k in a_keepers.values()) == 4
        await until(lambda: a.plan is not None and b.plan is not None
                    and (a.plan.load, b.plan.load) == (120, 12))
        (a_status,), (b_status,) = balance_status(a), balance_status(b)
        assert {k: a_status.counters[k] for k in ("held", "load", "target_load")} == {
            "held": 1, "load": 120, "target_load": 120}
        assert {k: b_status.counters[k] for k in ("held", "load", "target_load")} == {
            "held": 4, "load": 12, "target_load": 12}
        # What `m365pbx status` and the admin UI show: each node's jobs and load.
        view = await cluster_view(store, TIMING.lifetime)
        assert {n.node: (len(n.jobs), n.load) for n in view.nodes} == {
            "gw-a": (1, 120), "gw-b": (4, 12)}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
