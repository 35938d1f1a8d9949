"""Each person's event and contact subscriptions, so a restart takes them over."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.errors import SecretKeyError
from m365pbx.store.repositories._common import dialect_insert
from m365pbx.store.secrets import SecretBox
from m365pbx.store.tables import MailboxSubscriptionRow, Tenant

log = logging.getLogger(__name__)

CHUNK = 500  # people per statement: well below SQLite's bound-parameter limit


@dataclass(frozen=True)
class MailboxSubscriptionRecord:
    """One person's subscription as stored; `user_id` is the Teams user id in lower case."""

    user_id: str
    graph_subscription_id: str
    resource: str
    expires_at: datetime
    client_state: str = field(repr=False)


@dataclass(frozen=True)
class FoundMailboxSubscription:
    """One stored subscription found by its id: whose (the tenant's name) and what kind."""

    tenant: str
    kind: str
    record: MailboxSubscriptionRecord


class MailboxSubscriptionRepository:
    """Subscriptions by tenant, kind and person; the client states are encrypted."""

    def __init__(self, session: AsyncSession, box: SecretBox) -> None:
        self.session = session
        self.box = box

    async def save(self, tenant_id: int, kind: str,
                   records: Sequence[MailboxSubscriptionRecord], *, now: datetime) -> None:
        """Store these people's subscriptions (replacing what each had)."""
        for start in range(0, len(records), CHUNK):
            rows = [{"tenant_id": tenant_id, "kind": kind, "user_id": r.user_id.lower(),
                     "graph_subscription_id": r.graph_subscription_id,
                     "resource": r.resource, "expires_at": r.expires_at,
                     "client_state_encrypted": self.box.encrypt(r.client_state),
                     "updated_at": now}
                    for r in records[start:start + CHUNK]]
            insert = dialect_insert(self.session, MailboxSubscriptionRow)
            await self.session.execute(insert.on_conflict_do_update(
                index_elements=[MailboxSubscriptionRow.tenant_id, MailboxSubscriptionRow.kind,
                                MailboxSubscriptionRow.user_id],
                set_={name: getattr(insert.excluded, name)
                      for name in ("graph_subscription_id", "resource", "expires_at",
                                   "client_state_encrypted", "updated_at")}), rows)

    async def load(self, tenant_id: int, kind: str) -> list[MailboxSubscriptionRecord]:
        """The stored subscriptions of one tenant and kind (those whose client state cannot
        be decrypted are left out: they cannot be taken over)."""
        query = select(MailboxSubscriptionRow).where(
            MailboxSubscriptionRow.tenant_id == tenant_id, MailboxSubscriptionRow.kind == kind
        ).order_by(MailboxSubscriptionRow.id)
        found = []
        for row in await self.session.scalars(query):
            what = f"client state of subscription {row.graph_subscription_id!r}"
            try:
                client_state = self.box.decrypt(row.client_state_encrypted, what=what)
            except SecretKeyError as exc:
                log.warning("%s; it is made again instead", exc)
                continue
            found.append(MailboxSubscriptionRecord(row.user_id, row.graph_subscription_id,
                                                   row.resource, row.expires_at, client_state))
        return found

    async def find(self, graph_subscription_id: str) -> FoundMailboxSubscription | None:
        """The stored subscription with this Graph id, of any tenant and kind (one indexed
        query: the id is unique); None when unknown or its client state cannot be read."""
        found = (await self.session.execute(
            select(MailboxSubscriptionRow, Tenant.name)
            .join(Tenant, MailboxSubscriptionRow.tenant_id == Tenant.id)
            .where(MailboxSubscriptionRow.graph_subscription_id == graph_subscription_id)
        )).first()
        if found is None:
            return None
        row, tenant = found
        what = f"client state of subscription {row.graph_subscription_id!r}"
        try:
            client_state = self.box.decrypt(row.client_state_encrypted, what=what)
        except SecretKeyError as exc:
            log.warning("%s; its notifications are ignored", exc)
            return None
        return FoundMailboxSubscription(tenant, row.kind, MailboxSubscriptionRecord(
            row.user_id, row.graph_subscription_id, row.resource, row.expires_at, client_state))

    async def delete(self, tenant_id: int, kind: str, user_ids: Collection[str]) -> int:
        """Forget these people's subscriptions; return how many rows went."""
        ordered = sorted({user_id.lower() for user_id in user_ids})
        removed = 0
        for start in range(0, len(ordered), CHUNK):
            result = await self.session.execute(
                delete(MailboxSubscriptionRow)
                .where(MailboxSubscriptionRow.tenant_id == tenant_id,
                       MailboxSubscriptionRow.kind == kind,
                       MailboxSubscriptionRow.user_id.in_(ordered[start:start + CHUNK]))
                .execution_options(synchronize_session=False))
            removed += int(result.rowcount)  # type: ignore[attr-defined]
        return removed
