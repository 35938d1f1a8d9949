"""The parts' last recorded visible states, per node (core/status.py), for `m365pbx status`."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.core.status import PartStatus
from m365pbx.store.repositories._common import dialect_insert
from m365pbx.store.tables import PartStatusRow

CHUNK = 500  # parts per DELETE: well below SQLite's bound-parameter limit


class PartStatusRepository:
    """One row per (node, part): replaced on every change, read by the CLI and other nodes."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def save(self, node: str, statuses: Sequence[PartStatus], *, now: datetime) -> None:
        """Insert or replace these statuses of `node`, written at `now`."""
        if not statuses:
            return
        insert = dialect_insert(self.session, PartStatusRow)
        columns = ("kind", "state", "since", "error", "fix", "counters", "written_at")
        statement = insert.on_conflict_do_update(
            index_elements=[PartStatusRow.node, PartStatusRow.part],
            set_={name: getattr(insert.excluded, name) for name in columns},
        )
        rows = [{"node": node, "part": s.part, "kind": s.kind, "state": s.state,
                 "since": s.since, "error": s.error, "fix": s.fix,
                 "counters": dict(s.counters), "written_at": now} for s in statuses]
        await self.session.execute(statement, rows)

    async def forget(self, node: str, parts: Collection[str]) -> None:
        """Delete these parts of `node` (they no longer exist there)."""
        names = list(parts)
        for start in range(0, len(names), CHUNK):
            await self.session.execute(delete(PartStatusRow).where(
                PartStatusRow.node == node, PartStatusRow.part.in_(names[start:start + CHUNK])))

    async def keep_only(self, node: str, parts: Collection[str]) -> int:
        """Delete every part of `node` not in `parts` (left by an earlier run); how many."""
        query = select(PartStatusRow.part).where(PartStatusRow.node == node)
        left = set(await self.session.scalars(query)) - set(parts)
        await self.forget(node, left)
        return len(left)

    async def all(self) -> list[PartStatus]:
        """Every recorded status of every node, by node and part."""
        query = select(PartStatusRow).order_by(PartStatusRow.node, PartStatusRow.part)
        return [PartStatus(row.part, row.kind, row.state, row.since, row.error, row.fix,
                           dict(row.counters), row.node, row.written_at)
                for row in await self.session.scalars(query)]
