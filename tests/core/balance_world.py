"""A small model of the rows every node reads (the registry, the leases, the weights), for
the balancing tests: a round is one renewal interval in which every live node renews its
leases, is seen, makes its plan from the shared rows and acts on it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from m365pbx.core.balance import BalancePolicy, plan
from m365pbx.core.leases import Lease
from m365pbx.core.nodes import NodeSeen

LIFETIME = 3.0
ROUND = LIFETIME / 3  # the renewal interval
POLICY = BalancePolicy.for_lifetime(LIFETIME)
T0 = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
NAMES = ["gw-a", "gw-b", "gw-c", "gw-d", "gw-e"]


@dataclass
class World:
    """The rows every node reads: the registry, the leases and the jobs' weights, on the
    database's clock."""

    jobs: list[str]
    now: datetime = T0
    nodes: dict[str, NodeSeen] = field(default_factory=dict)
    leases: dict[str, Lease] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)  # a job missing weighs 1
    moves: int = 0  # leases that changed hands or were given up
    releases_per_plan: list[int] = field(default_factory=list)

    def join(self, node: str, *, age: float = 0.0) -> None:
        started = self.now - timedelta(seconds=age)
        self.nodes[node] = NodeSeen(node, started, self.now)

    def stop(self, node: str) -> None:
        """A clean stop: marked gone, its leases released."""
        self.nodes[node] = replace(self.nodes[node], stopped_at=self.now)
        for job, lease in list(self.leases.items()):
            if lease.holder == node and lease.expires_at > self.now:
                self.leases[job] = replace(lease, expires_at=self.now)

    def live(self) -> list[str]:
        return sorted(n for n, seen in self.nodes.items() if seen.live(self.now, LIFETIME))

    def holders(self) -> dict[str, str | None]:
        return {job: (lease.holder if (lease := self.leases.get(job)) is not None
                      and lease.expires_at > self.now else None) for job in self.jobs}

    def held_by(self, node: str) -> int:
        return sum(holder == node for holder in self.holders().values())

    def load(self, node: str) -> int:
        """The weight of the jobs `node` holds."""
        return sum(self.weights.get(job, 1) for job, holder in self.holders().items()
                   if holder == node)

    def acquire(self, job: str, node: str) -> None:
        lease = self.leases.get(job)
        if lease is not None and lease.expires_at > self.now:
            return
        epoch = 1 if lease is None else lease.epoch + 1
        self.leases[job] = Lease(job, node, epoch, self.now + timedelta(seconds=LIFETIME))
        self.moves += lease is not None

    def step(self, order: list[str]) -> None:
        """One renewal interval: every live node renews, is seen, plans and acts."""
        self.now += timedelta(seconds=ROUND)
        running = [n for n in order if n in self.live()]
        for node in running:
            self.nodes[node] = replace(self.nodes[node], last_seen=self.now)
            for job, lease in list(self.leases.items()):
                if lease.holder == node and lease.expires_at > self.now:
                    self.leases[job] = replace(
                        lease, expires_at=self.now + timedelta(seconds=LIFETIME))
        for node in running:
            decided = plan(node, self.jobs, self.leases.values(), self.nodes.values(),
                           self.now, POLICY, self.weights)
            self.releases_per_plan.append(int(decided.release is not None))
            if decided.release is not None:
                lease = self.leases[decided.release]
                self.leases[decided.release] = replace(lease, expires_at=self.now)
                self.moves += 1
            for job in sorted(decided.take):
                self.acquire(job, node)

    def run(self, rounds: int, orders: st.DataObject) -> None:
        for _ in range(rounds):
            self.step(orders.draw(st.permutations(sorted(self.nodes))))


def settled(world: World) -> None:
    """Every job held by a live node; each holds J // N or, J % N of them, one more."""
    live = world.live()
    holders = world.holders()
    assert all(holder in live for holder in holders.values()), holders
    base, extra = divmod(len(world.jobs), len(live))
    held = {n: world.held_by(n) for n in live}
    assert all(base <= count <= math.ceil(len(world.jobs) / len(live))
               for count in held.values()), held
    assert sum(count > base for count in held.values()) == extra, held
