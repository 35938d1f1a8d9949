"""Sharing jobs among the live nodes: which jobs a node should try to take, which to give up.

Pure (design rule 1): every node computes its own plan from the same rows (the node
registry, the leases and the database's time), so all nodes agree without talking.

- **Members.** Live nodes that have run for at least `settle` seconds count; a node that
  just joined does not yet (a node starting and stopping again moves nothing). If no live
  node has settled (a whole installation starting at once), every live node counts.
- **Shares.** With J jobs and N members, each gets J // N and the first J % N members by
  node id one more: at most ceil(J/N), the same answer on every node.
- **Moves.** A member under its share tries the free jobs (no live lease), at most as many
  as it lacks; a member over its share gives up one job per plan (the caller makes at most
  one plan per renewal interval). A node that is not a member gives nothing up.
- **Nobody's job.** A job without a live holder for `grace` seconds is tried by every
  node, whatever its share: a job is never left without a holder because the nodes'
  views of the membership disagree for a while.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from m365pbx.core.leases import Lease
from m365pbx.core.nodes import NodeSeen

__all__ = ["BalancePolicy", "Plan", "members", "plan", "shares"]


@dataclass(frozen=True, slots=True)
class BalancePolicy:
    """The timing of balancing, in seconds (all from the lease lifetime by default)."""

    lifetime: float  # a node not seen for this long is gone
    settle: float  # a node counts once it has been live this long
    grace: float  # a job without a holder this long is tried by every node

    @classmethod
    def for_lifetime(cls, lifetime: float) -> BalancePolicy:
        """Each period one lease lifetime."""
        return cls(lifetime=lifetime, settle=lifetime, grace=lifetime)


@dataclass(frozen=True, slots=True)
class Plan:
    """What one node should do now."""

    members: tuple[str, ...]  # the nodes sharing the jobs, by id
    share: int  # this node's share (0 when it is not a member)
    held: tuple[str, ...]  # the jobs this node holds
    take: frozenset[str]  # the jobs it may try to acquire
    release: str | None  # the one job it should give up, if any


def members(nodes: Iterable[NodeSeen], now: datetime, policy: BalancePolicy) -> tuple[str, ...]:
    """The live nodes that count (settled; or every live node if none has), by id."""
    live = [n for n in nodes if n.live(now, policy.lifetime)]
    settled = [n for n in live if n.age(now) >= policy.settle]
    return tuple(sorted({n.node for n in (settled or live)}))


def shares(nodes: Sequence[str], jobs: int) -> dict[str, int]:
    """Each node's share of `jobs`: J // N, and one more for the first J % N by id."""
    if not nodes:
        return {}
    ordered = sorted(nodes)
    base, extra = divmod(jobs, len(ordered))
    return {node: base + (index < extra) for index, node in enumerate(ordered)}


def _free_for(job: str, lease: Lease | None, now: datetime, my_age: float) -> float:
    """Seconds the job has been without a live holder (never held: as long as this node ran)."""
    if lease is None:
        return my_age
    return (now - lease.expires_at).total_seconds()


def plan(me: str, jobs: Iterable[str], leases: Iterable[Lease], nodes: Iterable[NodeSeen],
         now: datetime, policy: BalancePolicy) -> Plan:
    """What `me` should take and give up, given every node's row and every job's lease."""
    nodes = list(nodes)
    wanted = sorted(set(jobs))
    by_job = {lease.job: lease for lease in leases if lease.job in wanted}
    counted = members(nodes, now, policy)
    share = shares(counted, len(wanted)).get(me, 0)
    held = tuple(j for j in wanted if (lease := by_job.get(j)) is not None
                 and lease.holder == me and lease.expires_at > now)
    free = [j for j in wanted if (lease := by_job.get(j)) is None or lease.expires_at <= now]
    mine = next((n for n in nodes if n.node == me), None)
    my_age = 0.0 if mine is None else max(0.0, mine.age(now))
    # Nodes under their share try different free jobs first: fewer lost races.
    free.sort(key=lambda j: (zlib.crc32(f"{me}\n{j}".encode()), j))
    take = set(free[:max(0, share - len(held))]) if me in counted else set()
    take |= {j for j in free if _free_for(j, by_job.get(j), now, my_age) >= policy.grace}
    release = held[-1] if me in counted and len(held) > share else None
    return Plan(counted, share, held, frozenset(take), release)
