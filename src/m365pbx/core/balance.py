"""Sharing jobs among the live nodes: which jobs a node should try to take, which to give up.

Pure (design rule 1): every node computes its own plan from the same rows (the node
registry, the leases and the database's time), so all nodes agree without talking.

- **Members.** Live nodes that have run for at least `settle` seconds count; a node that
  just joined does not yet (a node starting and stopping again moves nothing). If no live
  node has settled (a whole installation starting at once), every live node counts.
- **Shares.** With J jobs and N members, each holds J // N, and J % N of them one more:
  at most ceil(J/N). Who holds one more is sticky (whoever does already, the first by
  node id if too many do), so a node coming back does not pull a job back to itself.
- **Moves.** A member under J // N tries the free jobs (no live lease), at most as many as
  it lacks; at J // N it tries one more while fewer than J % N members hold one more and
  nobody is under J // N. A member over ceil(J/N), or holding one more beyond the first
  J % N by node id, gives up one job per plan (the caller makes at most one plan per
  renewal interval). A node that is not a member gives nothing up.
- **Nobody's job.** A job without a live holder for `grace` seconds is tried by every
  node, whatever its share: a job is never left without a holder because the nodes'
  views of the membership disagree for a while.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from m365pbx.core.leases import Lease
from m365pbx.core.nodes import NodeSeen

__all__ = ["BalancePolicy", "Plan", "members", "plan"]


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
    share: int  # how many jobs this node aims at (0 when it is not a member)
    held: tuple[str, ...]  # the jobs this node holds
    take: frozenset[str]  # the jobs it may try to acquire
    release: str | None  # the one job it should give up, if any


def members(nodes: Iterable[NodeSeen], now: datetime, policy: BalancePolicy) -> tuple[str, ...]:
    """The live nodes that count (settled; or every live node if none has), by id."""
    live = [n for n in nodes if n.live(now, policy.lifetime)]
    settled = [n for n in live if n.age(now) >= policy.settle]
    return tuple(sorted({n.node for n in (settled or live)}))


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
    live = [lease for lease in by_job.values() if lease.expires_at > now]
    holding = Counter(lease.holder for lease in live)
    held = tuple(sorted(lease.job for lease in live if lease.holder == me))
    free = [j for j in wanted if (lease := by_job.get(j)) is None or lease.expires_at <= now]
    mine = next((n for n in nodes if n.node == me), None)
    my_age = 0.0 if mine is None else max(0.0, mine.age(now))
    # Nodes under their share try different free jobs first: fewer lost races.
    free.sort(key=lambda j: (zlib.crc32(f"{me}\n{j}".encode()), j))
    share, wants, release = 0, 0, None
    if me in counted:
        base, extra = divmod(len(wanted), len(counted))
        ceiling = base + (extra > 0)
        # Who holds one more: those who do already, the first `extra` by id if too many.
        above = [n for n in counted if extra and holding[n] >= ceiling]
        keeps = set(above[:extra])
        starving = any(holding[n] < base for n in counted)
        extra_free = len(above) < extra and not starving
        share = ceiling if me in keeps or (len(held) == base and extra_free) else base
        wants = share - len(held)
        if len(held) > share:
            release = held[-1]
    take = set(free[:max(0, wants)])
    take |= {j for j in free if _free_for(j, by_job.get(j), now, my_age) >= policy.grace}
    return Plan(counted, share, held, frozenset(take), release)
