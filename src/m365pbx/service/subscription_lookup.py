"""Event, contact and users subscriptions found by id on a node that does not run their
tenant (docs/cluster.md, "Webhook notifications on any node").

A tenant of 50,000 people has 100,000 of them: the receiving node never loads them all
with their client states, it asks the store for the one id a notification names (one
indexed query). Answers are kept briefly, and an id is asked about at most once per
`again_after` (concurrent POSTs share the one query in flight), so ids nobody knows cost
one query a second each, not one per notification.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from m365pbx.store import Store

__all__ = ["StoredMailboxSubscription", "SubscriptionLookup"]

AGAIN_AFTER = 1.0  # seconds before an id is asked about again (unknown ones)
KEEP_FOR = 60.0  # seconds a found subscription is kept without asking again
LIMIT = 10_000  # answers kept; past it the old ones go


@dataclass(frozen=True)
class StoredMailboxSubscription:
    """What the receiving node needs of one stored subscription."""

    tenant: str  # the configuration's name
    kind: str  # calendar, contacts, users
    client_state: str = field(repr=False)


class SubscriptionLookup:
    """Stored mailbox and users subscriptions by id, with a short memory."""

    def __init__(self, store: Store, *, again_after: float = AGAIN_AFTER,
                 keep_for: float = KEEP_FOR) -> None:
        self.store = store
        self.again_after = again_after
        self.keep_for = keep_for
        self.counters: Counter[str] = Counter()  # queries, found
        self._answers: dict[str, tuple[float, StoredMailboxSubscription | None]] = {}
        self._asking: dict[str, asyncio.Future[StoredMailboxSubscription | None]] = {}

    def remembered(self, subscription_id: str) -> StoredMailboxSubscription | None:
        """The answer kept for this id, without asking the store."""
        kept = self._answers.get(subscription_id)
        return None if kept is None else kept[1]

    async def find(self, subscription_id: str) -> StoredMailboxSubscription | None:
        """The stored subscription with this id, asking the store when the kept answer is
        too old (found: `keep_for`; unknown: `again_after`)."""
        kept = self._answers.get(subscription_id)
        if kept is not None:
            at, answer = kept
            if time.monotonic() - at < (self.keep_for if answer else self.again_after):
                return answer
        asking = self._asking.get(subscription_id)
        if asking is None:
            asking = asyncio.ensure_future(self._ask(subscription_id))
            self._asking[subscription_id] = asking
            asking.add_done_callback(lambda _: self._asking.pop(subscription_id, None))
        return await asyncio.shield(asking)

    async def _ask(self, subscription_id: str) -> StoredMailboxSubscription | None:
        self.counters["queries"] += 1
        async with self.store.transaction() as tx:
            found = await tx.mailbox_subscriptions.find(subscription_id)
        answer = None if found is None else StoredMailboxSubscription(
            found.tenant, found.kind, found.record.client_state)
        if answer is not None:
            self.counters["found"] += 1
        if len(self._answers) >= LIMIT:
            self._forget_old()
        self._answers[subscription_id] = (time.monotonic(), answer)
        return answer

    def _forget_old(self) -> None:
        """Drop answers older than `keep_for` (all of them if none is)."""
        horizon = time.monotonic() - self.keep_for
        old = [sid for sid, (at, _) in self._answers.items() if at < horizon]
        for sid in old or list(self._answers):
            del self._answers[sid]
