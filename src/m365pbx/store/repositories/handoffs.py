"""Webhook handoffs: notifications one node received for a tenant another node runs.

The receiving node inserts a row and, on PostgreSQL, `pg_notify`s the channel in the same
transaction (delivered at commit; a NOTIFY payload is limited to 8000 bytes, so it carries
only the tenant's name, a wake-up, and the notifications stay in the row). The tenant's
holder takes its rows oldest first and deletes them in the transaction that reads them,
fenced by its lease (`Store.fenced_write`): a stale holder cannot take them away from the
new one. Expiry is the database's clock, like the leases'.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.repositories.leases import LeaseRepository
from m365pbx.store.tables import WebhookHandoff

__all__ = ["CHANNEL", "HandedOff", "HandoffRepository"]

CHANNEL = "m365pbx_webhook_handoff"


@dataclass(frozen=True)
class HandedOff:
    """One row taken by the tenant's holder: the notifications, and who received them."""

    body: str
    notifications: int
    received_by: str


class HandoffRepository:
    """The `webhook_handoffs` table."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._postgres = session.get_bind().dialect.name == "postgresql"
        self._time = LeaseRepository(session)

    async def add(self, tenant: str, body: str, *, notifications: int, received_by: str,
                  lifetime: float) -> None:
        """Leave notifications for `tenant`'s holder for `lifetime` seconds, and wake it."""
        now = self._time.now_expression()
        await self.session.execute(insert(WebhookHandoff).values(
            tenant=tenant, body=body, notifications=notifications, received_by=received_by,
            received_at=now, expires_at=self._time.later_expression(lifetime)))
        if self._postgres:
            await self.session.execute(text("SELECT pg_notify(:channel, :tenant)"),
                                       {"channel": CHANNEL, "tenant": tenant})

    async def take(self, tenant: str, limit: int = 100) -> list[HandedOff]:
        """Delete and return up to `limit` live rows of `tenant`, oldest first."""
        query = (select(WebhookHandoff.id, WebhookHandoff.body, WebhookHandoff.notifications,
                        WebhookHandoff.received_by)
                 .where(WebhookHandoff.tenant == tenant,
                        WebhookHandoff.expires_at > self._time.now_expression())
                 .order_by(WebhookHandoff.id).limit(limit))
        if self._postgres:
            query = query.with_for_update(skip_locked=True)
        rows = (await self.session.execute(query)).all()
        if rows:
            await self.session.execute(
                delete(WebhookHandoff).where(WebhookHandoff.id.in_([r.id for r in rows])))
        return [HandedOff(r.body, r.notifications, r.received_by) for r in rows]

    async def drop_expired(self, tenant: str | None = None) -> int:
        """Delete the expired rows (of one tenant, or all); how many notifications they held."""
        condition = WebhookHandoff.expires_at <= self._time.now_expression()
        if tenant is not None:
            condition = condition & (WebhookHandoff.tenant == tenant)
        dropped = (await self.session.execute(
            delete(WebhookHandoff).where(condition).returning(WebhookHandoff.notifications)
        )).scalars().all()
        return sum(dropped)

    async def backlog(self) -> dict[str, int]:
        """Notifications waiting per tenant (live or expired, not yet deleted)."""
        rows = await self.session.execute(
            select(WebhookHandoff.tenant, func.sum(WebhookHandoff.notifications))
            .group_by(WebhookHandoff.tenant))
        return {tenant: int(count or 0) for tenant, count in rows}
