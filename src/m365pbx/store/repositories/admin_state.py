"""What the admin UI keeps: sessions, mapping overlays, pins and exclusions (issue 21, §2)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.tables import (
    EXCLUDE,
    PIN,
    AdminSessionRow,
    MappingOverlayRow,
    MatchingOverrideRow,
)


def token_hash(token: str) -> str:
    """The stored form of a session or link token (SHA-256, hex): the token is never stored."""
    return hashlib.sha256(token.encode()).hexdigest()


class AdminSessionRepository:
    """Admin sessions and one-time links, found by the hash of their token."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, token: str, *, kind: str, admin_name: str, csrf: str, now: datetime,
                  expires_at: datetime) -> AdminSessionRow:
        """Keep a new session or link (expired ones are deleted on the way)."""
        await self.session.execute(delete(AdminSessionRow)
                                   .where(AdminSessionRow.expires_at <= now))
        row = AdminSessionRow(token_hash=token_hash(token), kind=kind, admin_name=admin_name,
                              csrf=csrf, created_at=now, expires_at=expires_at)
        self.session.add(row)
        await self.session.flush()
        return row

    async def find(self, token: str, *, kind: str, now: datetime) -> AdminSessionRow | None:
        """The unexpired session or link of `token`, or None."""
        return await self.session.scalar(select(AdminSessionRow).where(
            AdminSessionRow.token_hash == token_hash(token), AdminSessionRow.kind == kind,
            AdminSessionRow.expires_at > now))

    async def remove(self, token: str) -> bool:
        """Forget a session or link (signing out, a used link); whether there was one."""
        result = await self.session.execute(
            delete(AdminSessionRow).where(AdminSessionRow.token_hash == token_hash(token)))
        return bool(getattr(result, "rowcount", 0))

    async def remove_admin(self, admin_name: str) -> int:
        """End every session of one admin (a new password); how many there were."""
        result = await self.session.execute(
            delete(AdminSessionRow).where(AdminSessionRow.admin_name == admin_name))
        return int(getattr(result, "rowcount", 0) or 0)

    async def count(self, *, now: datetime) -> int:
        """How many unexpired sessions there are."""
        rows = await self.session.scalars(select(AdminSessionRow.id).where(
            AdminSessionRow.kind == "session", AdminSessionRow.expires_at > now))
        return len(list(rows))


class MappingOverlayRepository:
    """The admin UI's mapping overlay per PBX connection."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def find(self, connection: str) -> MappingOverlayRow | None:
        """The overlay of one PBX connection, or None."""
        return await self.session.scalar(
            select(MappingOverlayRow).where(MappingOverlayRow.connection == connection))

    async def list_all(self) -> list[MappingOverlayRow]:
        """Every stored overlay, by connection."""
        return list(await self.session.scalars(
            select(MappingOverlayRow).order_by(MappingOverlayRow.connection)))

    async def put(self, connection: str, document: Mapping[str, Any], *, now: datetime,
                  by: str) -> MappingOverlayRow:
        """Replace (or add) one connection's overlay."""
        row = await self.find(connection)
        if row is None:
            row = MappingOverlayRow(connection=connection)
            self.session.add(row)
        row.document = dict(document)
        row.updated_at = now
        row.updated_by = by
        await self.session.flush()
        return row

    async def remove(self, connection: str) -> bool:
        """Drop one connection's overlay; whether there was one."""
        row = await self.find(connection)
        if row is not None:
            await self.session.delete(row)
            await self.session.flush()
        return row is not None


class MatchingOverrideRepository:
    """Pins and exclusions per PBX connection, one per key."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list_for(self, connection: str | None = None) -> list[MatchingOverrideRow]:
        """The pins and exclusions of one connection (None: of all), by connection and key."""
        query = select(MatchingOverrideRow).order_by(MatchingOverrideRow.connection,
                                                     MatchingOverrideRow.key)
        if connection is not None:
            query = query.where(MatchingOverrideRow.connection == connection)
        return list(await self.session.scalars(query))

    async def put(self, connection: str, key: str, *, kind: str, teams_user: str | None,
                  now: datetime, by: str) -> MatchingOverrideRow:
        """Pin `key` to `teams_user` or exclude `key`, replacing what was set for it."""
        if kind not in (PIN, EXCLUDE) or (kind == PIN) != (teams_user is not None):
            raise ValueError("a pin names a Microsoft user; an exclusion does not")
        row = await self.session.scalar(select(MatchingOverrideRow).where(
            MatchingOverrideRow.connection == connection, MatchingOverrideRow.key == key))
        if row is None:
            row = MatchingOverrideRow(connection=connection, key=key)
            self.session.add(row)
        row.kind, row.teams_user, row.created_at, row.created_by = kind, teams_user, now, by
        await self.session.flush()
        return row

    async def remove(self, connection: str, key: str) -> MatchingOverrideRow | None:
        """Drop the pin or exclusion of `key`; what it was, or None."""
        row = await self.session.scalar(select(MatchingOverrideRow).where(
            MatchingOverrideRow.connection == connection, MatchingOverrideRow.key == key))
        if row is not None:
            await self.session.delete(row)
            await self.session.flush()
        return row
