"""Leases on jobs that must have one owner among several nodes: the value and its timing.

A lease names a job ("tenant/contoso/presence"), the node holding it, when the database
says it expires, and its fencing epoch: a number that grows each time the job changes
hands, so a write carrying an older epoch can be refused (docs/cluster.md). Pure: the
deadlines are computed from a moment the caller measured, never from a clock here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["Lease", "LeaseTiming"]


@dataclass(frozen=True, slots=True)
class Lease:
    """One job's lease as the database returned it."""

    job: str
    holder: str
    epoch: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """How long a lease lasts and when its holder renews it or gives up acting on it.

    The holder measures from the moment it *sent* the acquire or renew: the database's
    expiry is at least `lifetime` after that moment, so stopping by then (less `margin`
    for clock rate differences and a slow stop) is before any other node can take over.
    """

    lifetime: float = 30.0
    renew_fraction: float = 1 / 3
    margin_fraction: float = 1 / 6

    def __post_init__(self) -> None:
        if self.lifetime <= 0:
            raise ValueError("a lease lifetime must be positive")
        if not 0 < self.renew_fraction < 1 - self.margin_fraction:
            raise ValueError("renewal must come before the holder stops acting")

    @property
    def renew_every(self) -> float:
        """Seconds between renewals (a third of the lifetime by default)."""
        return self.lifetime * self.renew_fraction

    def renew_at(self, sent: float) -> float:
        """When to renew a lease acquired or renewed by a request sent at `sent`."""
        return sent + self.renew_every

    def act_until(self, sent: float) -> float:
        """Until when its holder may act on a lease confirmed by a request sent at `sent`."""
        return sent + self.lifetime * (1 - self.margin_fraction)
