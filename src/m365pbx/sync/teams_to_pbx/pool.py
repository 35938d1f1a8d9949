"""The pool of service accounts that carry the presence subscriptions of one tenant.

Each account covers at most 650 people (graph.md 4.4). People are spread evenly and stay
with their account when others come and go, so a change recreates as few subscriptions as
possible. People no account can take are left to polling and reported.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from m365pbx.clock import Clock
from m365pbx.graph.subscriptions import MAX_PRESENCE_IDS
from m365pbx.pbx.base import ConnectionState
from m365pbx.sync.supervise import supervised
from m365pbx.sync.teams_to_pbx.owner import AccountOwner
from m365pbx.sync.teams_to_pbx.receiver import KnownSubscription

log = logging.getLogger(__name__)


def balance(
    people: Sequence[str], accounts: Sequence[str], current: dict[str, tuple[str, ...]],
    *, capacity: int = MAX_PRESENCE_IDS,
) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """Assign people to accounts evenly, keeping existing assignments where they fit.

    Returns the assignment and the people left over (more than the accounts can carry).
    """
    if not accounts:
        return {}, sorted(set(people))
    wanted = sorted(set(people))
    share = min(capacity, max(1, math.ceil(len(wanted) / len(accounts))))
    remaining = set(wanted)
    result: dict[str, list[str]] = {account: [] for account in accounts}
    for account in accounts:
        for person in current.get(account, ()):
            if person in remaining and len(result[account]) < share:
                result[account].append(person)
                remaining.discard(person)
    # The least loaded account (then the first by name) takes the next person: a heap, as
    # a scan of every account per person cost 50,000 x 77 steps at start-up.
    loads = [(len(result[account]), account) for account in accounts]
    heapq.heapify(loads)
    for person in sorted(remaining):
        size, target = loads[0]
        if size >= capacity:
            break
        result[target].append(person)
        remaining.discard(person)
        heapq.heapreplace(loads, (size + 1, target))
    return {a: tuple(sorted(p)) for a, p in result.items()}, sorted(remaining)


def _shown_on(owner: AccountOwner) -> Callable[[str], None]:
    """Show an owner's unexpected failure (a bug) on its state until it runs again."""
    def note(message: str) -> None:
        owner.state = ConnectionState.ERROR
        owner.last_error = message

    return note


@dataclass(frozen=True, slots=True)
class Capacity:
    """How far the service accounts reach: people beyond them are only polled."""

    people: int
    accounts: int
    per_account: int
    unassigned: int

    @property
    def accounts_missing(self) -> int:
        """Service accounts to add so that everyone's notifications flow."""
        if not self.unassigned:
            return 0
        return max(1, math.ceil(self.people / self.per_account) - self.accounts)

    def describe(self) -> str:
        """The shortfall in words, with the fix."""
        return (f"{self.unassigned} of {self.people} people exceed what {self.accounts} "
                f"service account(s) can carry ({self.per_account} each): their presence is "
                f"polled, not notified. Add {self.accounts_missing} service account(s).")


class SubscriptionPool:
    """Owners of one tenant's service accounts, and who carries whom."""

    def __init__(self, owners: Sequence[AccountOwner], *, label: str = "presence",
                 capacity: int = MAX_PRESENCE_IDS, clock: Clock | None = None) -> None:
        self.owners = {owner.account: owner for owner in owners}
        self.label = label
        self.capacity = capacity
        self.unassigned: list[str] = []
        self._people = 0
        self.clock = clock
        # When people began to exceed the capacity (None while everyone is carried).
        self.short_since: datetime | None = None

    def assign(self, people: Sequence[str]) -> None:
        """Spread these Teams user ids over the accounts."""
        current = {account: owner.people for account, owner in self.owners.items()}
        before = len(self.unassigned)
        assignment, self.unassigned = balance(people, list(self.owners), current,
                                              capacity=self.capacity)
        self._people = len(set(people))
        for account, owned in assignment.items():
            self.owners[account].assign(owned)
        if bool(self.unassigned) != bool(before):
            self.short_since = (self.clock.now() if self.unassigned and self.clock is not None
                                else None)
        if len(self.unassigned) != before:
            if self.unassigned:
                log.warning("%s: %s", self.label, self.shortfall().describe())
            else:
                log.info("%s: every person is carried by a service account again", self.label)

    def shortfall(self) -> Capacity:
        """The people beyond the accounts' capacity, and how many accounts are missing."""
        return Capacity(self._people, len(self.owners), self.capacity, len(self.unassigned))

    def known(self, subscription_id: str) -> KnownSubscription | None:
        """The subscription with this id, if one of ours."""
        for owner in self.owners.values():
            known = owner.known()
            if known is not None and known.id == subscription_id:
                return known
        return None

    def owner_of(self, subscription_id: str) -> AccountOwner | None:
        """The owner of a subscription id."""
        for owner in self.owners.values():
            known = owner.known()
            if known is not None and known.id == subscription_id:
                return owner
        return None

    def uncovered(self) -> list[str]:
        """People whose notifications are not flowing now (unhealthy account or no account)."""
        people = list(self.unassigned)
        for owner in self.owners.values():
            if not owner.healthy:
                people += owner.people
        return people

    async def run(self) -> None:
        """Run every owner until cancelled."""
        async with asyncio.TaskGroup() as group:
            for owner in self.owners.values():
                group.create_task(supervised(
                    f"presence subscription of {owner.account}", owner.run, owner.clock,
                    on_failure=_shown_on(owner)))
