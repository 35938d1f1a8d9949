"""The store side of the lease keepers (sync/leases.py): the port, and their visible state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, Protocol, TypeVar

from m365pbx.clock import Clock
from m365pbx.core.leases import Lease, LeaseTiming
from m365pbx.core.status import PartState, PartStatus
from m365pbx.store import FencedOut, Repositories, SecretBox, Store
from m365pbx.store.db import create_engine
from m365pbx.sync.leases import KeeperState, LeaseKeeper

__all__ = ["FIX_LEASE", "Ownership", "StoreLeases", "Writes", "lease_statuses", "lease_store_for",
           "owned_by_lease"]

T = TypeVar("T")

FIX_LEASE = ("Check this node's connection to the PostgreSQL server; while it cannot renew, "
             "another node takes the job over when the lease expires")


class StoreLeases:
    """The keepers' port: each call one transaction through the store's retried write path."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def acquire(self, job: str, holder: str, lifetime: float) -> Lease | None:
        """Take the job if nobody holds it or its lease expired; None while another holds it."""
        return await self.store.write(lambda tx: tx.leases.acquire(job, holder, lifetime),
                                      what=f"the lease on {job}")

    async def renew(self, lease: Lease, lifetime: float) -> Lease | None:
        """Extend a live lease at its epoch; None once it expired or changed hands."""
        return await self.store.write(lambda tx: tx.leases.renew(lease, lifetime),
                                      what=f"the lease on {lease.job}")

    async def release(self, lease: Lease) -> bool:
        """End the lease now; whether it was still ours."""
        return await self.store.write(lambda tx: tx.leases.release(lease),
                                      what=f"the lease on {lease.job}")

    async def current(self, job: str) -> Lease | None:
        """The job's lease as the database holds it, or None."""
        async with self.store.transaction() as tx:
            return await tx.leases.current(job)


class Writes(Protocol):
    """Where a part's writes go: the store itself (one node), or an `Ownership` (several)."""

    async def write(self, work: Callable[[Repositories], Awaitable[T]], *, what: str) -> T:
        """Run `work` in one transaction (see Store.write)."""
        ...


class Ownership:
    """The lease under which this node acts on one job: the writes that depend on it are
    fenced with its epoch (Store.fenced_write), and refused while it is not held."""

    def __init__(self, store: Store, job: str, *, lease_store: Store | None = None) -> None:
        self.store = store
        self.job = job
        # Where the lease itself is renewed: its own connections, so a renewal never waits
        # behind this node's bulk writes for a pooled one (see lease_store_for).
        self.lease_store = lease_store or store
        self.lease: Lease | None = None  # set by the job's keeper while it holds the lease

    async def write(self, work: Callable[[Repositories], Awaitable[T]], *, what: str) -> T:
        """Run `work` fenced by the held lease; FencedOut if none is held or it is stale."""
        lease = self.lease
        if lease is None:
            raise FencedOut(f"not saving {what}: this node does not hold {self.job}")
        return await self.store.fenced_write(lease, work, what=what)


def lease_store_for(url: str, box: SecretBox) -> Store:
    """A store with two connections of its own for renewing leases and the roll call.

    Renewals must land within a third of the lease's lifetime. A node taking a tenant of
    thousands over fills the shared pool with long writes (people, saved state), and a
    renewal queued behind them missed its deadline: the chaos soak saw the tenant move
    between nodes every few seconds, each new holder losing it the same way.
    """
    return Store(create_engine(url, pool_size=2, max_overflow=0), box)


def owned_by_lease(run: Callable[[], Coroutine[Any, Any, None]], ownership: Ownership,
                   node: str, clock: Clock, *, lifetime: float) -> LeaseKeeper:
    """A keeper that runs `run()` (a tenant's jobs) only while `node` holds the lease of
    `ownership.job`, with the held lease in `ownership` for the fenced writes meanwhile."""
    async def work(lease: Lease) -> None:
        ownership.lease = lease
        try:
            await run()
        finally:
            ownership.lease = None

    return LeaseKeeper(StoreLeases(ownership.lease_store), ownership.job, node, work, clock,
                       timing=LeaseTiming(lifetime))


_STATES = {KeeperState.STARTING: PartState.STARTING, KeeperState.HOLDING: PartState.OK,
           KeeperState.STANDBY: PartState.OK, KeeperState.LOST: PartState.DEGRADED,
           KeeperState.STOPPED: PartState.STOPPED}


def lease_statuses(keepers: Iterable[LeaseKeeper],
                   more: Callable[[str], dict[str, int]] | None = None) -> list[PartStatus]:
    """Each job's lease on this node: held (with its epoch), on standby, or lost and why;
    `more(job)` adds counters (the tenant's refused writes)."""
    found = []
    for keeper in keepers:
        lease = keeper.lease if keeper.state is KeeperState.HOLDING else keeper.other
        error = keeper.last_error if keeper.state is KeeperState.LOST else None
        counters = {"held": int(keeper.state is KeeperState.HOLDING),
                    "epoch": 0 if lease is None else lease.epoch,
                    "losses": keeper.losses, "acquisitions": keeper.acquisitions,
                    "given_up": keeper.handovers}
        if more is not None:
            counters |= more(keeper.job)
        found.append(PartStatus(f"lease/{keeper.job}", "lease", _STATES[keeper.state],
                                keeper.since, error, FIX_LEASE if error else None, counters))
    return found
