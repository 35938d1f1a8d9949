"""The nodes of one installation as the database has seen them: who is live, who holds what.

Pure: liveness is judged against the database's time passed in (docs/cluster.md, "Time is
the database's"), never a clock here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from m365pbx.core.leases import Lease

__all__ = ["NodeSeen", "NodeSummary", "summarize"]


@dataclass(frozen=True, slots=True)
class NodeSeen:
    """One node's row in the registry: since when it runs and when it was last seen."""

    node: str
    started_at: datetime
    last_seen: datetime
    stopped_at: datetime | None = None  # set when it stopped cleanly

    def live(self, now: datetime, lifetime: float) -> bool:
        """Whether the node counts as running: not stopped, seen within one lease lifetime."""
        return self.stopped_at is None and (now - self.last_seen).total_seconds() < lifetime

    def age(self, now: datetime) -> float:
        """Seconds since the node started (the database's clock)."""
        return (now - self.started_at).total_seconds()


@dataclass(frozen=True, slots=True)
class NodeSummary:
    """A node as `m365pbx status` and the admin UI show it."""

    node: str
    live: bool
    started_at: datetime
    last_seen: datetime
    stopped_at: datetime | None
    jobs: tuple[str, ...]  # the jobs it holds a live lease on
    load: int = 0  # their weight (a job weighs at least 1: core/balance.py)


def summarize(nodes: Iterable[NodeSeen], leases: Iterable[Lease], now: datetime,
              lifetime: float, weights: Mapping[str, int] | None = None) -> list[NodeSummary]:
    """Every node (live first, then by name) with the jobs it holds live leases on and
    their load (a job missing from `weights` weighs 1)."""
    held: dict[str, list[str]] = {}
    for lease in leases:
        if lease.expires_at > now:
            held.setdefault(lease.holder, []).append(lease.job)
    given = weights or {}
    found = [NodeSummary(n.node, n.live(now, lifetime), n.started_at, n.last_seen,
                         n.stopped_at, tuple(sorted(jobs := held.get(n.node, []))),
                         sum(max(1, given.get(job, 1)) for job in jobs))
             for n in nodes]
    return sorted(found, key=lambda s: (not s.live, s.node))
