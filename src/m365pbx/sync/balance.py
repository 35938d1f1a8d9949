"""Balancing the jobs among the nodes: the roll call each renewal interval, and the plan.

Each renewal interval the `Balancer` records this node as seen and reads every node's row,
every lease and every job's weight in one transaction (the database's time with them), so
every node plans from the same rows; it makes this node's plan
(core/balance.py) and applies it to the lease keepers (sync/leases.py): the keepers of the
jobs it may take are woken, the keeper of the one job to give up gives it up. Keepers ask
`may_take` before each acquire; until the first plan nothing is taken. A clean stop marks
the node gone, so the others count without it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from m365pbx.clock import Clock
from m365pbx.core.balance import BalancePolicy, Plan, plan, weigh
from m365pbx.core.leases import Lease, LeaseTiming
from m365pbx.core.nodes import NodeSeen
from m365pbx.sync.leases import RELEASE_WITHIN, LeaseKeeper
from m365pbx.sync.supervise import describe_failure

__all__ = ["Balancer", "RollCall", "RollCallPort"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RollCall:
    """Every node's row, every lease and the jobs' weights, read together at the
    database's `now`."""

    now: datetime
    nodes: list[NodeSeen]
    leases: list[Lease]
    weights: dict[str, int] = field(default_factory=dict)  # by job; a job missing weighs 1


class RollCallPort(Protocol):
    """What a balancer needs from the database (service/balance.py fills it from the store)."""

    async def roll_call(self, node: str, *, joining: bool) -> RollCall:
        """Record `node` as seen (as starting when `joining`); read every node, lease and
        job weight."""
        ...

    async def leave(self, node: str) -> None:
        """Record that `node` stopped cleanly."""
        ...


class Balancer:
    """Keeps this node at its share of the jobs held by `keepers` (by job)."""

    def __init__(self, port: RollCallPort, node: str, keepers: Mapping[str, LeaseKeeper],
                 clock: Clock, *, timing: LeaseTiming) -> None:
        self.port = port
        self.node = node
        self.keepers = dict(keepers)
        self.clock = clock
        self.timing = timing
        self.policy = BalancePolicy.for_lifetime(timing.lifetime)
        self.plan: Plan | None = None
        self.seen: RollCall | None = None
        self.last_error: str | None = None
        self.since = clock.now()
        self._joining = True  # the first roll call records the start (not a supervised restart)
        for keeper in self.keepers.values():
            keeper.may_take = self.may_take

    def may_take(self, job: str) -> bool:
        """Whether this node should try to acquire `job` now (the keepers' gate)."""
        return self.plan is not None and job in self.plan.take

    async def run(self) -> None:
        """A roll call and a plan each renewal interval; until cancelled, then leave."""
        try:
            while True:
                try:
                    call = await asyncio.wait_for(
                        self.port.roll_call(self.node, joining=self._joining),
                        timeout=self.timing.renew_every)
                except Exception as exc:  # the database: shown, and tried again
                    self._failed(f"cannot reach the database for the roll call of the nodes: "
                                 f"{describe_failure(exc)}")
                else:
                    self._joining = False
                    self._apply(call)
                await asyncio.sleep(self.timing.renew_every)
        finally:
            await self._leave()

    def _failed(self, reason: str) -> None:
        # Without a roll call the others soon count this node as gone: take nothing new.
        if self.plan is not None:
            self.plan = replace(self.plan, take=frozenset(), release=None)
        if reason != self.last_error:
            log.warning("%s", reason)
            self.last_error, self.since = reason, self.clock.now()

    def _apply(self, call: RollCall) -> None:
        if self.last_error is not None:
            log.info("the roll call of the nodes works again")
            self.last_error, self.since = None, self.clock.now()
        decided = plan(self.node, self.keepers, call.leases, call.nodes, call.now, self.policy,
                       call.weights)
        weights = weigh(self.keepers, call.weights)
        if self.plan is None or (decided.members, decided.share) != (
                self.plan.members, self.plan.share):
            log.info("%d node(s) share %d job(s) weighing %d: %s; %s's share is %d job(s) "
                     "weighing %d", len(decided.members), len(weights), sum(weights.values()),
                     ", ".join(decided.members) or "none yet", self.node, decided.share,
                     decided.target)
        self.plan, self.seen = decided, call
        for job in decided.take:
            self.keepers[job].wake()
        if decided.release is not None:
            keeper = self.keepers[decided.release]
            log.info("%s holds %d job(s) weighing %d, aiming at %d: giving %s (weight %d) up",
                     self.node, len(decided.held), decided.load, decided.target,
                     decided.release, weights[decided.release])
            keeper.give_up()

    async def _leave(self) -> None:
        with contextlib.suppress(Exception):  # a node not seen for a lifetime is gone anyway
            async with asyncio.timeout(RELEASE_WITHIN):
                await self.port.leave(self.node)
                log.info("%s left the cluster", self.node)
