"""Clients of the built-in presence API: a salted hash of each key, never the key itself."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.errors import ConflictError, NotFoundError
from m365pbx.store.repositories._common import flush_or_conflict
from m365pbx.store.tables import ApiClient


class ApiClientRepository:
    """API clients by name and by key id; hashing and checking keys is the caller's job."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(
        self,
        name: str,
        *,
        key_id: str,
        salt: str,
        key_hash: str,
        scopes: Iterable[str],
        now: datetime,
    ) -> ApiClient:
        """Add a client; ConflictError if the name (even a revoked one) or key id is taken."""
        if await self.get(name) is not None:
            raise ConflictError(f"an API client named {name!r} exists already")
        row = ApiClient(
            name=name,
            key_id=key_id,
            salt=salt,
            key_hash=key_hash,
            scopes=sorted(set(scopes)),
            created_at=now,
        )
        self.session.add(row)
        await flush_or_conflict(self.session, f"cannot add API client {name!r}")
        return row

    async def get(self, name: str) -> ApiClient | None:
        """Return the client with this name, or None."""
        query = select(ApiClient).where(ApiClient.name == name)
        return (await self.session.scalars(query)).one_or_none()

    async def by_key_id(self, key_id: str) -> ApiClient | None:
        """Return the client whose key starts with this key id, or None."""
        query = select(ApiClient).where(ApiClient.key_id == key_id)
        return (await self.session.scalars(query)).one_or_none()

    async def list_all(self) -> list[ApiClient]:
        """Return every client, revoked ones included, by name."""
        query = select(ApiClient).order_by(ApiClient.name)
        return list(await self.session.scalars(query))

    async def revoke(self, name: str, *, now: datetime) -> tuple[ApiClient, bool]:
        """Revoke the client's key; return the row and whether it was in use until now."""
        row = await self.get(name)
        if row is None:
            raise NotFoundError(f"there is no API client named {name!r}")
        if row.revoked_at is not None:
            return row, False
        row.revoked_at = now
        await self.session.flush()
        return row, True

    async def touch(self, key_id: str, *, now: datetime) -> None:
        """Record that the client with this key id was just used."""
        row = await self.by_key_id(key_id)
        if row is not None:
            row.last_used_at = now
            await self.session.flush()
