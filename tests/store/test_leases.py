"""Leases (issue 25): one owner per job, decided by the database, fenced by an epoch.

Every test runs on SQLite and PostgreSQL. Expiry is the database's clock: a lease is made
to lapse by moving its expiry into the database's past, never by sleeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from m365pbx.core.leases import Lease
from m365pbx.store import FencedOut, Repositories, SecretBox, Store, create_engine
from m365pbx.store.tables import LeaseRow
from tests.store.helpers import NOW

JOB = "tenant/contoso/presence"


async def acquire(store: Store, node: str, lifetime: float = 30.0, job: str = JOB
                  ) -> Lease | None:
    return await store.write(lambda tx: tx.leases.acquire(job, node, lifetime),
                             what=f"the lease on {job}")


async def expire(store: Store, job: str = JOB) -> None:
    """Make the job's lease lapse: its expiry one second in the database's past."""
    async def move(tx: Repositories) -> None:
        past = await tx.leases.database_now() - timedelta(seconds=1)
        await tx.session.execute(update(LeaseRow).where(LeaseRow.job == job)
                                 .values(expires_at=past))

    await store.write(move, what="an expiry")


async def audit_actors(store: Store) -> list[str]:
    async with store.transaction() as tx:
        return [e.actor for e in reversed(await tx.audit.list_recent())]


def note(actor: str) -> Callable[[Repositories], Awaitable[None]]:
    """A write that leaves a visible trace: an audit event by `actor`."""
    async def work(tx: Repositories) -> None:
        await tx.audit.append(at=NOW, actor=actor, action="polled", object_type="tenant")
    return work


async def test_first_holder_gets_epoch_one_and_the_database_s_expiry(store: Store) -> None:
    lease = await acquire(store, "node-a", lifetime=30)
    assert lease is not None
    assert (lease.job, lease.holder, lease.epoch) == (JOB, "node-a", 1)
    async with store.transaction() as tx:
        now = await tx.leases.database_now()
        assert await tx.leases.current(JOB) == lease
    assert timedelta(seconds=25) < lease.expires_at - now <= timedelta(seconds=30)


async def test_a_live_lease_is_not_taken_not_even_by_its_holder_s_name(store: Store) -> None:
    first = await acquire(store, "node-a")
    assert await acquire(store, "node-b") is None
    assert await acquire(store, "node-a") is None  # a restarted node waits for the expiry too
    async with store.transaction() as tx:
        assert await tx.leases.current(JOB) == first


async def test_an_expired_lease_is_taken_over_with_a_newer_epoch(store: Store) -> None:
    await acquire(store, "node-a")
    await expire(store)
    taken = await acquire(store, "node-b")
    assert taken is not None and (taken.holder, taken.epoch) == ("node-b", 2)
    await expire(store)
    again = await acquire(store, "node-a")
    assert again is not None and (again.holder, again.epoch) == ("node-a", 3)


async def test_renewal_extends_only_a_live_lease_at_its_epoch(store: Store) -> None:
    lease = await acquire(store, "node-a", lifetime=5)
    assert lease is not None
    renewed = await store.write(lambda tx: tx.leases.renew(lease, 60), what="a renewal")
    assert renewed is not None and renewed.epoch == 1
    assert renewed.expires_at - lease.expires_at > timedelta(seconds=50)
    stranger = Lease(JOB, "node-b", 1, lease.expires_at)
    assert await store.write(lambda tx: tx.leases.renew(stranger, 60), what="r") is None
    await expire(store)
    # Lapsed: the holder must acquire again (a new epoch), not carry on.
    assert await store.write(lambda tx: tx.leases.renew(lease, 60), what="r") is None
    await acquire(store, "node-b")
    assert await store.write(lambda tx: tx.leases.renew(lease, 60), what="r") is None


async def test_release_lets_another_node_take_over_at_once(store: Store) -> None:
    lease = await acquire(store, "node-a")
    assert lease is not None
    assert await store.write(lambda tx: tx.leases.release(lease), what="a release")
    taken = await acquire(store, "node-b")
    assert taken is not None and taken.epoch == 2  # never back to 1: the row stays
    assert not await store.write(lambda tx: tx.leases.release(lease), what="a release")
    async with store.transaction() as tx:
        assert await tx.leases.current(JOB) == taken


async def test_a_stale_epoch_cannot_write(store: Store, caplog: pytest.LogCaptureFixture
                                          ) -> None:
    # node-a is paused (SIGSTOP) past its expiry; node-b takes over; node-a resumes.
    old = await acquire(store, "node-a")
    assert old is not None
    await store.fenced_write(old, note("node-a"), what="the poll of contoso")
    await expire(store)
    new = await acquire(store, "node-b")
    assert new is not None
    with caplog.at_level(logging.WARNING), pytest.raises(FencedOut) as refused:
        await store.fenced_write(old, note("node-a late"), what="the poll of contoso")
    assert "'node-b' holds it at epoch 2" in str(refused.value)
    assert "not saving the poll of contoso" in caplog.text
    await store.fenced_write(new, note("node-b"), what="the poll of contoso")
    assert await audit_actors(store) == ["node-a", "node-b"]


async def test_a_lapsed_lease_nobody_took_still_writes(store: Store) -> None:
    lease = await acquire(store, "node-a")
    assert lease is not None
    await expire(store)
    await store.fenced_write(lease, note("node-a"), what="w")
    assert await audit_actors(store) == ["node-a"]


async def test_a_job_never_leased_refuses_fenced_writes(store: Store) -> None:
    ghost = Lease("tenant/nobody/presence", "node-a", 1, NOW)
    with pytest.raises(FencedOut, match="no lease exists"):
        await store.fenced_write(ghost, note("node-a"), what="w")
    assert await audit_actors(store) == []


async def test_a_refused_write_leaves_nothing_of_its_work(store: Store) -> None:
    await acquire(store, "node-a")
    stale = Lease(JOB, "node-a", 0, NOW)

    async def work(tx: Repositories) -> None:
        raise AssertionError("the fence must refuse before the work runs")

    with pytest.raises(FencedOut):
        await store.fenced_write(stale, work, what="w")


async def test_nodes_racing_for_a_job_get_exactly_one_owner(database_url: str, box: SecretBox,
                                                            engine: AsyncEngine) -> None:
    # Separate engines, as separate processes have: the database alone decides.
    stores = [Store(create_engine(database_url), box) for _ in range(6)]
    try:
        for round_number in range(3):
            job = f"race/{round_number}"
            won = await asyncio.gather(*(acquire(s, f"node-{i}", job=job)
                                         for i, s in enumerate(stores)))
            winners = [lease for lease in won if lease is not None]
            assert len(winners) == 1 and winners[0].epoch == 1
            await expire(stores[0], job)
            won = await asyncio.gather(*(acquire(s, f"node-{i}", job=job)
                                         for i, s in enumerate(stores)))
            winners = [lease for lease in won if lease is not None]
            assert len(winners) == 1 and winners[0].epoch == 2
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_which_node_holds_what(store: Store) -> None:
    await acquire(store, "node-a", job="b/job")
    await acquire(store, "node-b", job="a/job")
    async with store.transaction() as tx:
        held = [(lease.job, lease.holder) for lease in await tx.leases.all()]
    assert held == [("a/job", "node-b"), ("b/job", "node-a")]
