"""Where MailboxSubscriptions keeps its subscriptions across restarts (design.md rule 4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class MailboxRecord:
    """One person's event or contact subscription, as persisted."""

    user_id: str  # lower case
    graph_id: str
    resource: str
    expires: datetime
    client_state: str = field(repr=False)


class MailboxRecords(Protocol):
    """Persistence of one tenant's subscriptions of one kind, by person."""

    async def load(self) -> list[MailboxRecord]:
        """Every recorded subscription."""
        ...

    async def save(self, keep: Sequence[MailboxRecord], forget: Sequence[str]) -> None:
        """Record these subscriptions (replacing each person's) and forget those of the
        people in `forget`, in one go."""
        ...


class MemoryMailboxRecords:
    """MailboxRecords in memory (tests)."""

    def __init__(self) -> None:
        self.records: dict[str, MailboxRecord] = {}

    async def load(self) -> list[MailboxRecord]:
        """Every recorded subscription."""
        return list(self.records.values())

    async def save(self, keep: Sequence[MailboxRecord], forget: Sequence[str]) -> None:
        """Record these subscriptions and forget those of the people in `forget`."""
        for user_id in forget:
            self.records.pop(user_id, None)
        for record in keep:
            self.records[record.user_id] = record
