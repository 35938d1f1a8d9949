"""Graph change-notification subscriptions we own, so a restart resumes them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.errors import NotFoundError
from m365pbx.store.repositories._common import flush_or_conflict
from m365pbx.store.secrets import SecretBox
from m365pbx.store.tables import Subscription


class SubscriptionRepository:
    """Subscriptions, by Graph subscription id; the client-state secret is encrypted."""

    def __init__(self, session: AsyncSession, box: SecretBox) -> None:
        self.session = session
        self.box = box

    async def save(
        self,
        graph_subscription_id: str,
        *,
        tenant_id: int,
        service_account_id: int,
        resource: str,
        expires_at: datetime,
        client_state: str,
        now: datetime,
    ) -> Subscription:
        """Store a subscription Graph just created (replacing a row with the same id)."""
        row = await self.get(graph_subscription_id)
        if row is None:
            row = Subscription(graph_subscription_id=graph_subscription_id, created_at=now)
            self.session.add(row)
        row.tenant_id = tenant_id
        row.service_account_id = service_account_id
        row.resource = resource
        row.expires_at = expires_at
        row.client_state_encrypted = self.box.encrypt(client_state)
        await flush_or_conflict(self.session, f"cannot save subscription {graph_subscription_id!r}")
        return row

    async def get(self, graph_subscription_id: str) -> Subscription | None:
        """Return the subscription with this Graph id, or None."""
        query = select(Subscription).where(
            Subscription.graph_subscription_id == graph_subscription_id
        )
        return (await self.session.scalars(query)).one_or_none()

    async def renew(
        self, graph_subscription_id: str, *, expires_at: datetime, now: datetime
    ) -> Subscription:
        """Record a renewal: the new expiry and when it happened."""
        row = await self._require(graph_subscription_id)
        row.expires_at = expires_at
        row.renewed_at = now
        await self.session.flush()
        return row

    async def list_expiring_before(self, when: datetime) -> list[Subscription]:
        """Return the subscriptions that expire before `when`, soonest first."""
        query = (
            select(Subscription)
            .where(Subscription.expires_at < when)
            .order_by(Subscription.expires_at, Subscription.id)
        )
        return list(await self.session.scalars(query))

    async def list_for_service_account(self, service_account_id: int) -> list[Subscription]:
        """Return the subscriptions owned by one service account, soonest expiry first."""
        query = (
            select(Subscription)
            .where(Subscription.service_account_id == service_account_id)
            .order_by(Subscription.expires_at, Subscription.id)
        )
        return list(await self.session.scalars(query))

    async def list_all(self) -> list[Subscription]:
        """Return every subscription, soonest expiry first."""
        query = select(Subscription).order_by(Subscription.expires_at, Subscription.id)
        return list(await self.session.scalars(query))

    async def delete(self, graph_subscription_id: str) -> bool:
        """Forget a subscription; return whether it existed."""
        result = await self.session.execute(
            delete(Subscription)
            .where(Subscription.graph_subscription_id == graph_subscription_id)
            .execution_options(synchronize_session="fetch")
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def client_state(self, row: Subscription) -> str:
        """Return the decrypted client-state secret Graph echoes in each notification."""
        return self.box.decrypt(
            row.client_state_encrypted,
            what=f"client state of subscription {row.graph_subscription_id!r}",
        )

    async def _require(self, graph_subscription_id: str) -> Subscription:
        row = await self.get(graph_subscription_id)
        if row is None:
            raise NotFoundError(f"subscription {graph_subscription_id!r} does not exist")
        return row
