"""Presence API handoffs: events and user directories a PBX sent to a node that does not
run the connection's tenant, waiting for the node that does (docs/cluster.md).

Like the webhook handoffs (`handoffs.py`): the receiving node inserts a row and, on
PostgreSQL, `pg_notify`s the tenant's name in the same transaction; the tenant's holder
takes its rows oldest first (the order the PBX sent them in, per person too) and deletes
them in that transaction, fenced by its lease. Expiry is the database's clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.repositories.leases import LeaseRepository
from m365pbx.store.tables import ApiHandoff

__all__ = ["API_CHANNEL", "ApiHandedOff", "ApiHandoffRepository"]

API_CHANNEL = "m365pbx_api_handoff"

EVENTS = "events"
USERS = "users"


@dataclass(frozen=True)
class ApiHandedOff:
    """One row taken by the tenant's holder: a list of events or a whole directory."""

    connection: str
    kind: str
    body: str
    items: int
    received_by: str


class ApiHandoffRepository:
    """The `api_handoffs` table."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._postgres = session.get_bind().dialect.name == "postgresql"
        self._time = LeaseRepository(session)

    async def add(self, tenant: str, connection: str, kind: str, body: str, *, items: int,
                  received_by: str, lifetime: float) -> None:
        """Leave events or users for `tenant`'s holder for `lifetime` seconds, and wake it."""
        await self.session.execute(insert(ApiHandoff).values(
            tenant=tenant, connection=connection, kind=kind, body=body, items=items,
            received_by=received_by, received_at=self._time.now_expression(),
            expires_at=self._time.later_expression(lifetime)))
        if self._postgres:
            await self.session.execute(text("SELECT pg_notify(:channel, :tenant)"),
                                       {"channel": API_CHANNEL, "tenant": tenant})

    async def take(self, tenant: str, *, limit: int = 100,
                   room: int | None = None) -> list[ApiHandedOff]:
        """Delete and return live rows of `tenant`, oldest first: at most `limit` rows, and
        events rows only while their events fit in `room` (the rest wait, in order). A
        directory is taken past waiting events: the holder may need it to follow anyone."""
        query = (select(ApiHandoff.id, ApiHandoff.connection, ApiHandoff.kind, ApiHandoff.body,
                        ApiHandoff.items, ApiHandoff.received_by)
                 .where(ApiHandoff.tenant == tenant,
                        ApiHandoff.expires_at > self._time.now_expression())
                 .order_by(ApiHandoff.id).limit(limit))
        if self._postgres:
            query = query.with_for_update(skip_locked=True)
        chosen = []
        left = room
        for row in (await self.session.execute(query)).all():
            if row.kind == EVENTS and left is not None:
                if row.items > left:
                    left = -1  # blocked: no later events may overtake this row
                    continue
                left -= row.items
            chosen.append(row)
        if chosen:
            await self.session.execute(
                delete(ApiHandoff).where(ApiHandoff.id.in_([r.id for r in chosen])))
        return [ApiHandedOff(r.connection, r.kind, r.body, r.items, r.received_by)
                for r in chosen]

    async def drop_expired(self, tenant: str | None = None) -> list[ApiHandedOff]:
        """Delete the expired rows (of one tenant, or all) and return them."""
        condition = ApiHandoff.expires_at <= self._time.now_expression()
        if tenant is not None:
            condition = condition & (ApiHandoff.tenant == tenant)
        rows = (await self.session.execute(
            delete(ApiHandoff).where(condition).returning(
                ApiHandoff.id, ApiHandoff.connection, ApiHandoff.kind, ApiHandoff.body,
                ApiHandoff.items, ApiHandoff.received_by))).all()
        return [ApiHandedOff(r.connection, r.kind, r.body, r.items, r.received_by)
                for r in sorted(rows, key=lambda r: r.id)]

    async def backlog(self) -> dict[str, int]:
        """Items (events, users) waiting per tenant, live or expired."""
        rows = await self.session.execute(
            select(ApiHandoff.tenant, func.sum(ApiHandoff.items)).group_by(ApiHandoff.tenant))
        return {tenant: int(count or 0) for tenant, count in rows}
