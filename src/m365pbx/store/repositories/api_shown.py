"""Shown presence for every node's presence API: the node running a tenant writes each
person as its API shows them; the others read what changed since they last looked.

Each write carries a version, `epoch << 32 | counter` (the holder's lease epoch and its own
count), so a newer holder's rows always sort after an older one's, and a reader asks for
rows above the highest version it has seen. A person no longer followed keeps a row with a
null body (a tombstone), which readers see like any change. On PostgreSQL every write
`pg_notify`s the tenant's name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.tables import ApiShown

__all__ = ["SHOWN_CHANNEL", "ShownRepository", "ShownRow", "shown_version"]

SHOWN_CHANNEL = "m365pbx_api_shown"
VERSION_BITS = 32


def shown_version(epoch: int, counter: int) -> int:
    """The version of a holder's `counter`th write under lease `epoch`."""
    return (epoch << VERSION_BITS) | (counter & ((1 << VERSION_BITS) - 1))


@dataclass(frozen=True)
class ShownRow:
    """One person's shown state as stored; `body` None once no longer followed."""

    connection: str
    key: str
    tenant: str
    version: int
    body: str | None


class ShownRepository:
    """The `api_shown` table."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    async def put(self, tenant: str, version: int,
                  rows: Iterable[tuple[str, str, str | None]]) -> int:
        """Upsert (connection, key, body) rows of `tenant` at `version`; wake the readers."""
        values = [{"connection": c, "key": k, "tenant": tenant, "version": version, "body": b}
                  for c, k, b in rows]
        if not values:
            return 0
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        for start in range(0, len(values), 1000):
            statement = insert(ApiShown).values(values[start:start + 1000])
            statement = statement.on_conflict_do_update(
                index_elements=[ApiShown.connection, ApiShown.key],
                set_={"tenant": statement.excluded.tenant,
                      "version": statement.excluded.version,
                      "body": statement.excluded.body})
            await self.session.execute(statement)
        if self.dialect == "postgresql":
            await self.session.execute(text("SELECT pg_notify(:channel, :tenant)"),
                                       {"channel": SHOWN_CHANNEL, "tenant": tenant})
        return len(values)

    async def since(self, tenant: str, version: int) -> list[ShownRow]:
        """The rows of `tenant` written after `version`, oldest version first."""
        rows = await self.session.execute(
            select(ApiShown.connection, ApiShown.key, ApiShown.tenant, ApiShown.version,
                   ApiShown.body)
            .where(ApiShown.tenant == tenant, ApiShown.version > version)
            .order_by(ApiShown.version))
        return [ShownRow(*row) for row in rows]

    async def followed(self, tenant: str) -> set[tuple[str, str]]:
        """The (connection, key) of `tenant`'s people whose row is not a tombstone."""
        rows = await self.session.execute(
            select(ApiShown.connection, ApiShown.key)
            .where(ApiShown.tenant == tenant, ApiShown.body.is_not(None)))
        return {(connection, key) for connection, key in rows}

    async def newest(self, tenant: str) -> int:
        """The highest version stored for `tenant` (0 for none)."""
        found = await self.session.scalar(
            select(func.max(ApiShown.version)).where(ApiShown.tenant == tenant))
        return int(found or 0)
