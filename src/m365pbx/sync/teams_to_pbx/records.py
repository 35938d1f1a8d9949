"""Where the subscription pool keeps its subscriptions across restarts (design.md rule 4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class SubscriptionRecord:
    """A presence subscription we own, as persisted."""

    graph_id: str
    account: str
    resource: str
    expires: datetime
    client_state: str = field(repr=False)


class SubscriptionRecords(Protocol):
    """Persistence of subscriptions, keyed by the owning service account's UPN."""

    async def load(self, account: str) -> list[SubscriptionRecord]:
        """Subscriptions recorded for this account."""
        ...

    async def save(self, record: SubscriptionRecord) -> None:
        """Record a new subscription or its new expiry."""
        ...

    async def delete(self, graph_id: str) -> None:
        """Forget a subscription."""
        ...


class MemoryRecords:
    """SubscriptionRecords in memory (tests; a service without a store)."""

    def __init__(self) -> None:
        self.records: dict[str, SubscriptionRecord] = {}

    async def load(self, account: str) -> list[SubscriptionRecord]:
        """Subscriptions recorded for this account."""
        return [r for r in self.records.values() if r.account == account]

    async def save(self, record: SubscriptionRecord) -> None:
        """Record a new subscription or its new expiry."""
        self.records[record.graph_id] = record

    async def delete(self, graph_id: str) -> None:
        """Forget a subscription."""
        self.records.pop(graph_id, None)
