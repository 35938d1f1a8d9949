"""The local administrators of the admin UI: password hashes and failed sign-ins."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.errors import ConflictError
from m365pbx.store.tables import AdminUser


class AdminUserRepository:
    """Create, find and count the sign-ins of admin users (hashes only, never passwords)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, name: str, password_hash: str, *, now: datetime) -> AdminUser:
        """Add an admin; ConflictError if the name is taken."""
        if await self.find(name) is not None:
            raise ConflictError(f"there is an admin named {name!r} already")
        row = AdminUser(name=name, password_hash=password_hash, created_at=now,
                        failed_attempts=0)
        self.session.add(row)
        await self.session.flush()
        return row

    async def set_password(self, name: str, password_hash: str) -> AdminUser | None:
        """Replace an admin's password hash and unlock them; None if there is no such admin."""
        row = await self.find(name)
        if row is not None:
            row.password_hash = password_hash
            row.failed_attempts = 0
            row.locked_until = None
            await self.session.flush()
        return row

    async def find(self, name: str) -> AdminUser | None:
        """The admin named `name`, or None."""
        return await self.session.scalar(select(AdminUser).where(AdminUser.name == name))

    async def list_all(self) -> list[AdminUser]:
        """Every admin, by name."""
        return list(await self.session.scalars(select(AdminUser).order_by(AdminUser.name)))

    async def failed(self, row: AdminUser, *, now: datetime, limit: int,
                     lock_for: timedelta) -> bool:
        """Count a failed sign-in; lock the admin for `lock_for` at the `limit`-th in a row.

        Returns whether this failure locked the account."""
        row.failed_attempts += 1
        locked = row.failed_attempts >= limit
        if locked:
            row.locked_until = now + lock_for
            row.failed_attempts = 0
        await self.session.flush()
        return locked

    async def signed_in(self, row: AdminUser, *, now: datetime) -> None:
        """A successful sign-in: the failed ones in a row start again from zero."""
        row.failed_attempts = 0
        row.locked_until = None
        row.last_sign_in_at = now
        await self.session.flush()
