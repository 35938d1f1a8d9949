"""Signed-in admins' sessions, their CSRF tokens and one-time sign-in links (in the store).

A session is a random token in an HttpOnly, SameSite=Strict cookie (Secure when the
public URL is https); each has its own CSRF token that every form sends back. The store
keeps the SHA-256 of each token (never the token): a restart keeps everybody signed in,
and every node serving the UI knows every session.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from m365pbx.clock import Clock
from m365pbx.store import Repositories, Store

SESSION_COOKIE = "m365pbx_admin"
LOGIN_CSRF_COOKIE = "m365pbx_admin_login"
SESSION_LIFETIME = timedelta(hours=8)
LINK_LIFETIME = timedelta(minutes=10)
_SESSION, _LINK = "session", "link"


@dataclass
class AdminSession:
    """One signed-in admin."""

    name: str
    csrf: str
    expires: datetime


@dataclass
class SessionBook:
    """Sessions and one-time links by token, kept in the store; expired ones never match."""

    store: Store
    clock: Clock
    lifetime: timedelta = SESSION_LIFETIME

    async def open(self, name: str) -> str:
        """Start a session for admin `name`; the token for its cookie."""
        return await self._add(name, _SESSION, self.lifetime)

    async def find(self, token: str | None) -> AdminSession | None:
        """The live session of `token`, or None."""
        if not token:
            return None
        async with self.store.transaction() as tx:
            row = await tx.admin_sessions.find(token, kind=_SESSION, now=self.clock.now())
        return None if row is None else AdminSession(row.admin_name, row.csrf, row.expires_at)

    async def close(self, token: str | None) -> None:
        """End the session of `token` (signing out)."""
        if not token:
            return

        async def work(tx: Repositories) -> None:
            await tx.admin_sessions.remove(token)

        await self.store.write(work, what="signing an admin out")

    async def one_time_link(self, name: str) -> str:
        """A token that signs `name` in once, within LINK_LIFETIME (the demo's link)."""
        return await self._add(name, _LINK, LINK_LIFETIME)

    async def use_link(self, token: str) -> str | None:
        """The admin a one-time link signs in (the link is used up), or None."""
        async def work(tx: Repositories) -> str | None:
            row = await tx.admin_sessions.find(token, kind=_LINK, now=self.clock.now())
            # Removed in the same transaction: two clicks cannot both use it.
            used = await tx.admin_sessions.remove(token)
            return row.admin_name if row is not None and used else None

        return await self.store.write(work, what="a one-time sign-in link")

    async def open_sessions(self) -> int:
        """How many unexpired sessions there are (on every node)."""
        async with self.store.transaction() as tx:
            return await tx.admin_sessions.count(now=self.clock.now())

    async def _add(self, name: str, kind: str, lifetime: timedelta) -> str:
        token = secrets.token_urlsafe(32)
        now = self.clock.now()

        async def work(tx: Repositories) -> None:
            await tx.admin_sessions.add(token, kind=kind, admin_name=name,
                                        csrf=secrets.token_urlsafe(32), now=now,
                                        expires_at=now + lifetime)

        await self.store.write(work, what=f"a {kind} of admin {name!r}")
        return token


def same_token(expected: str | None, given: str | None) -> bool:
    """Compare two CSRF tokens in constant time; a missing one never matches."""
    return bool(expected) and bool(given) and hmac.compare_digest(
        str(expected).encode(), str(given).encode())


def new_token() -> str:
    """A fresh random token (the sign-in form's CSRF cookie)."""
    return secrets.token_urlsafe(32)
