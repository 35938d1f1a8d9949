"""The store side of balancing (sync/balance.py): the roll call, and its visible state.

A job's weight is its tenant's matched people (the rows of the `people` table matched to
a Teams user of that tenant, over every PBX connection: the people whose presence the
tenant's holder carries), read in the roll call's transaction, so every node weighs the
jobs from the same rows. A tenant not synced yet has none and weighs 1 (core/balance.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from m365pbx.core.leases import Lease
from m365pbx.core.nodes import NodeSummary, summarize
from m365pbx.core.status import PartState, PartStatus
from m365pbx.store import Repositories, Store
from m365pbx.sync.balance import Balancer, RollCall

__all__ = ["FORGET_AFTER", "ClusterView", "StoreRollCall", "balance_status", "cluster_view",
           "job_weights"]

FORGET_AFTER = timedelta(days=1)
"""Rows of nodes not seen for this long are deleted (names of restarts without node_id)."""

FIX_ROLL_CALL = ("Check this node's connection to the PostgreSQL server; meanwhile it takes "
                 "no job, and the other nodes count it as gone after one lease lifetime")


async def job_weights(tx: Repositories) -> dict[str, int]:
    """Each tenant's job (`tenant/<name>`) weighed by its matched people (tenants with any)."""
    found = await tx.people.matched_by_tenant()
    return {f"tenant/{name}": count for name, count in found.items()}


class StoreRollCall:
    """The balancer's port: each roll call one transaction through the retried write path."""

    def __init__(self, store: Store, lifetime: float) -> None:
        self.store = store
        self.lifetime = timedelta(seconds=lifetime)  # a node not seen this long was gone

    async def roll_call(self, node: str, *, joining: bool) -> RollCall:
        """Record `node` as seen (as starting when `joining`); read every node, lease and
        job weight."""
        async def work(tx: Repositories) -> RollCall:
            now = await tx.leases.database_now()
            if joining:
                await tx.nodes.join(node)
            else:
                await tx.nodes.seen(node, gone_before=now - self.lifetime)
            await tx.nodes.forget_before(now - FORGET_AFTER)
            return RollCall(now, await tx.nodes.all(), await tx.leases.all(),
                            await job_weights(tx))

        return await self.store.write(work, what=f"the roll call of node {node}")

    async def leave(self, node: str) -> None:
        """Record that `node` stopped cleanly."""
        await self.store.write(lambda tx: tx.nodes.leave(node), what=f"node {node} leaving")


@dataclass(frozen=True, slots=True)
class ClusterView:
    """Which nodes run and which holds what, as the admin UI shows it."""

    now: datetime  # the database's
    nodes: list[NodeSummary]
    leases: list[Lease]


async def cluster_view(store: Store, lifetime: float) -> ClusterView:
    """Every recorded node with the jobs it holds and their load (live or gone by the
    database's clock), and every job's lease."""
    async with store.transaction() as tx:
        leases, now = await tx.leases.all(), await tx.leases.database_now()
        return ClusterView(now, summarize(await tx.nodes.all(), leases, now, lifetime,
                                          await job_weights(tx)), leases)


def balance_status(balancer: Balancer) -> list[PartStatus]:
    """The part `cluster/balance`: the nodes sharing the jobs, this node's share and load."""
    decided, seen = balancer.plan, balancer.seen
    live = (0 if seen is None else
            sum(n.live(seen.now, balancer.policy.lifetime) for n in seen.nodes))
    counters = {"nodes": live, "members": 0 if decided is None else len(decided.members),
                "share": 0 if decided is None else decided.share,
                "held": 0 if decided is None else len(decided.held),
                "load": 0 if decided is None else decided.load,
                "target_load": 0 if decided is None else decided.target,
                "given_up": sum(k.handovers for k in balancer.keepers.values())}
    if balancer.last_error is not None:
        state = PartState.DEGRADED
    else:
        state = PartState.STARTING if decided is None else PartState.OK
    return [PartStatus("cluster/balance", "cluster", state, balancer.since, balancer.last_error,
                       FIX_ROLL_CALL if balancer.last_error else None, counters)]
