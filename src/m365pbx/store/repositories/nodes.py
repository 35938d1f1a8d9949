"""The node registry: each node records itself, is seen at each renewal, and stops visibly.

Times are the database's (LeaseRepository's clock), like the leases they are compared
with: a node's own clock may be skewed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.core.nodes import NodeSeen
from m365pbx.store.repositories._common import dialect_insert
from m365pbx.store.repositories.leases import LeaseRepository
from m365pbx.store.tables import NodeRow

__all__ = ["NodeRepository"]


class NodeRepository:
    """The `nodes` table: one row per node id."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._clock = LeaseRepository(session)

    async def join(self, node: str) -> None:
        """Record `node` as starting now (a restart under the same id starts again)."""
        now = self._clock.now_expression()
        insert = dialect_insert(self.session, NodeRow).values(
            node=node, started_at=now, last_seen=now, stopped_at=None)
        await self.session.execute(insert.on_conflict_do_update(
            index_elements=[NodeRow.node],
            set_={"started_at": now, "last_seen": now, "stopped_at": None}))

    async def seen(self, node: str, *, gone_before: datetime) -> None:
        """Record that `node` runs now (its row is made again if it was deleted). A node
        last seen before `gone_before` (or stopped) was gone: it starts again now."""
        now = self._clock.now_expression()
        insert = dialect_insert(self.session, NodeRow).values(
            node=node, started_at=now, last_seen=now, stopped_at=None)
        was_gone = or_(NodeRow.last_seen < gone_before, NodeRow.stopped_at.is_not(None))
        await self.session.execute(insert.on_conflict_do_update(
            index_elements=[NodeRow.node],
            set_={"started_at": case((was_gone, now), else_=NodeRow.started_at),
                  "last_seen": now, "stopped_at": None}))

    async def leave(self, node: str) -> bool:
        """Mark `node` as stopped now (a clean stop); whether its row existed."""
        now = self._clock.now_expression()
        statement = (update(NodeRow).where(NodeRow.node == node)
                     .values(last_seen=now, stopped_at=now).returning(NodeRow.id))
        return (await self.session.execute(statement)).one_or_none() is not None

    async def forget_before(self, moment: datetime) -> int:
        """Delete the rows of nodes last seen before `moment`; how many."""
        result = await self.session.execute(
            delete(NodeRow).where(NodeRow.last_seen < moment).returning(NodeRow.id))
        return len(result.all())

    async def all(self) -> list[NodeSeen]:
        """Every recorded node, by id."""
        rows = await self.session.execute(
            select(NodeRow.node, NodeRow.started_at, NodeRow.last_seen, NodeRow.stopped_at)
            .order_by(NodeRow.node))
        return [NodeSeen(*row) for row in rows]
