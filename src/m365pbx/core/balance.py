"""Sharing jobs among the live nodes: which jobs a node should try to take, which to give up.

Pure (design rule 1): every node computes its own plan from the same rows (the node
registry, the leases, each job's weight and the database's time), so all nodes agree
without talking.

- **Members.** Live nodes that have run for at least `settle` seconds count; a node that
  just joined does not yet (a node starting and stopping again moves nothing). If no live
  node has settled (a whole installation starting at once), every live node counts.
- **Weights and loads.** A job weighs what the caller says (a tenant: its matched
  people), at least 1; a member's load is the weight of the jobs it holds. With every
  weight equal this is counting jobs, and the plans end in equal shares: J // N each,
  J % N of the members one more, the members holding one more already keeping it (the
  last by id giving one up when too many do).
- **Free jobs** (no live lease) go, heaviest first, each to the least-loaded member (the
  first by id on a tie) other than the member that held it last (which gave it up, or
  lost it and may still count for a while without being able to take it); a member tries
  those that fall to it. Every member makes the same assignment from the same rows, so
  they try different jobs.
- **Moves.** A job moves from a member to the least-loaded member only if that lowers the
  larger of their two loads by more than half the job's weight (so weights that drift a
  little move nothing, and a job given up is not pulled back unless they drift by about
  its weight), or if the giver is loaded beyond the fair load (total weight / N) plus the
  heaviest job and the move lowers it at all. Only one move is made per plan in the whole
  installation: the most-loaded member that can make one (the last by id on a tie) gives
  up the job that evens the two loads out best (the lighter, then the last by name, on a
  tie); the caller makes at most one plan per renewal interval. A node that is not a member gives
  nothing up. Each move lowers the sum of the squared loads, so with stable members and
  weights the moves end, and then nothing moves; the most-loaded member then carries at
  most the fair load plus the heaviest job.
- **Nobody's job.** A job without a live holder for `grace` seconds is tried by every
  node, whatever its share: a job is never left without a holder because the nodes'
  views of the membership disagree for a while.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from m365pbx.core.leases import Lease
from m365pbx.core.nodes import NodeSeen

__all__ = ["BalancePolicy", "Plan", "members", "plan", "weigh"]


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
    load: int = 0  # the weight of the jobs it holds
    target: int = 0  # the load it aims at (0 when it is not a member)


@dataclass(frozen=True, slots=True)
class _Move:
    job: str
    giver: str
    receiver: str


def members(nodes: Iterable[NodeSeen], now: datetime, policy: BalancePolicy) -> tuple[str, ...]:
    """The live nodes that count (settled; or every live node if none has), by id."""
    live = [n for n in nodes if n.live(now, policy.lifetime)]
    settled = [n for n in live if n.age(now) >= policy.settle]
    return tuple(sorted({n.node for n in (settled or live)}))


def weigh(jobs: Iterable[str], weights: Mapping[str, int] | None) -> dict[str, int]:
    """Each job's weight: as given, at least 1 (a job nobody weighed yet weighs 1)."""
    given = weights or {}
    return {job: max(1, int(given.get(job, 1))) for job in jobs}


def _free_for(job: str, lease: Lease | None, now: datetime, my_age: float) -> float:
    """Seconds the job has been without a live holder (never held: as long as this node ran)."""
    if lease is None:
        return my_age
    return (now - lease.expires_at).total_seconds()


class _Sharing:
    """The members' loads as the jobs would be held: free jobs given out, then moves made."""

    def __init__(self, counted: tuple[str, ...], owner: Mapping[str, str],
                 weight: Mapping[str, int]) -> None:
        self.counted = counted
        self.weight = weight
        self.jobs: dict[str, set[str]] = {n: set() for n in counted}  # member -> jobs
        self.loads = dict.fromkeys(counted, 0)
        for job, node in owner.items():
            self._hold(job, node)
        self.total = sum(weight.values())
        self.heaviest = max(weight.values(), default=1)

    def least(self, besides: str | None = None) -> str:
        """The least-loaded member (the first by id on a tie), other than `besides`."""
        return min((n for n in self.counted if n != besides), key=lambda n: (self.loads[n], n))

    def give_out(self, free: Iterable[str], last: Mapping[str, str]) -> dict[str, str]:
        """Each free job, heaviest first, to the least-loaded member other than the one
        that held it last (`last`, by job), unless it is the only one: job -> member."""
        given: dict[str, str] = {}
        for job in sorted(free, key=lambda j: (-self.weight[j], j)):
            # Its last holder gave it up (to even the loads out) or lost it (killed, cut
            # off, paused: it may still count for up to a lifetime, but cannot take it).
            besides = last.get(job) if len(self.counted) > 1 else None
            self._hold(job, given.setdefault(job, self.least(besides=besides)))
        return given

    def worth_it(self, job: str, giver: str, receiver: str) -> bool:
        """Whether moving `job` evens out the giver's and the receiver's loads enough."""
        load, other, weight = self.loads[giver], self.loads[receiver], self.weight[job]
        if other + weight >= load:
            return False  # the larger of the two loads would not get lower
        # Lower by more than half the job's weight (in integers: 2(L - l - w) > w), or
        # the giver is beyond the fair load plus the heaviest job.
        return (2 * (load - other) > 3 * weight
                or load * len(self.counted) > self.total + self.heaviest * len(self.counted))

    def next_move(self) -> _Move | None:
        """The one move to make now, if any (see the module's docstring)."""
        if len(self.counted) < 2:
            return None
        for giver in sorted(self.counted, key=lambda n: (self.loads[n], n), reverse=True):
            receiver = self.least(besides=giver)
            jobs = sorted((j for j in self.jobs[giver] if self.worth_it(j, giver, receiver)),
                          reverse=True)
            if jobs:
                load, other = self.loads[giver], self.loads[receiver]
                job = min(jobs, key=lambda j: (max(load - self.weight[j],
                                                   other + self.weight[j]), self.weight[j]))
                return _Move(job, giver, receiver)
        return None

    def move(self, step: _Move) -> None:
        """Make `step` in these loads."""
        self.jobs[step.giver].discard(step.job)
        self.loads[step.giver] -= self.weight[step.job]
        self._hold(step.job, step.receiver)

    def _hold(self, job: str, node: str) -> None:
        self.jobs[node].add(job)
        self.loads[node] += self.weight[job]


def plan(me: str, jobs: Iterable[str], leases: Iterable[Lease], nodes: Iterable[NodeSeen],
         now: datetime, policy: BalancePolicy, weights: Mapping[str, int] | None = None,
         ) -> Plan:
    """What `me` should take and give up, given every node's row, every job's lease and
    weight (a job missing from `weights` weighs 1)."""
    nodes = list(nodes)
    wanted = sorted(set(jobs))
    weight = weigh(wanted, weights)
    by_job = {lease.job: lease for lease in leases if lease.job in weight}
    counted = members(nodes, now, policy)
    live = {job: lease.holder for job, lease in by_job.items() if lease.expires_at > now}
    held = tuple(sorted(job for job, holder in live.items() if holder == me))
    free = [j for j in wanted if j not in live]
    mine = next((n for n in nodes if n.node == me), None)
    my_age = 0.0 if mine is None else max(0.0, mine.age(now))
    take: set[str] = set()
    release, share, target = None, 0, 0
    if me in counted:
        sharing = _Sharing(counted, {j: h for j, h in live.items() if h in counted}, weight)
        last = {j: lease.holder for j, lease in by_job.items() if j not in live}
        take = {job for job, node in sharing.give_out(free, last).items() if node == me}
        first = sharing.next_move()
        # Only a job this node holds: the free ones just given out are not held yet.
        if first is not None and first.giver == me and first.job in held:
            release = first.job
        # Where the moves end (bounded: each lowers the sum of the squared loads anyway).
        for _ in range(4 * len(wanted) + 4):
            if first is None:
                break
            sharing.move(first)
            first = sharing.next_move()
        share, target = len(sharing.jobs[me]), sharing.loads[me]
    take |= {j for j in free if _free_for(j, by_job.get(j), now, my_age) >= policy.grace}
    return Plan(counted, share, held, frozenset(take), release,
                sum(weight[j] for j in held), target)
