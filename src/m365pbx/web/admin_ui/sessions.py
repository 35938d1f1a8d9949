"""Signed-in admins' sessions, their CSRF tokens and one-time sign-in links (in memory).

A session is a random token in an HttpOnly, SameSite=Strict cookie (Secure when the
public URL is https); each has its own CSRF token that every form sends back. They live in
this process only: a restart signs everybody out.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from m365pbx.clock import Clock

SESSION_COOKIE = "m365pbx_admin"
LOGIN_CSRF_COOKIE = "m365pbx_admin_login"
SESSION_LIFETIME = timedelta(hours=8)
LINK_LIFETIME = timedelta(minutes=10)


@dataclass
class AdminSession:
    """One signed-in admin."""

    name: str
    csrf: str
    expires: datetime


@dataclass
class SessionBook:
    """Sessions by token; expired ones are forgotten when met."""

    clock: Clock
    lifetime: timedelta = SESSION_LIFETIME
    _sessions: dict[str, AdminSession] = field(default_factory=dict)
    _links: dict[str, tuple[str, datetime]] = field(default_factory=dict)

    def open(self, name: str) -> str:
        """Start a session for admin `name`; the token for its cookie."""
        self._forget_expired()
        token = secrets.token_urlsafe(32)
        self._sessions[token] = AdminSession(name, secrets.token_urlsafe(32),
                                             self.clock.now() + self.lifetime)
        return token

    def find(self, token: str | None) -> AdminSession | None:
        """The live session of `token`, or None."""
        session = None if not token else self._sessions.get(token)
        if session is not None and session.expires <= self.clock.now():
            del self._sessions[token or ""]
            return None
        return session

    def close(self, token: str | None) -> None:
        """End the session of `token` (signing out)."""
        self._sessions.pop(token or "", None)

    def one_time_link(self, name: str) -> str:
        """A token that signs `name` in once, within LINK_LIFETIME (the demo's link)."""
        self._forget_expired()
        token = secrets.token_urlsafe(32)
        self._links[token] = (name, self.clock.now() + LINK_LIFETIME)
        return token

    def use_link(self, token: str) -> str | None:
        """The admin a one-time link signs in (the link is used up), or None."""
        name, expires = self._links.pop(token, ("", self.clock.now()))
        return name if name and expires > self.clock.now() else None


    def _forget_expired(self) -> None:
        # Sessions nobody signs out of would otherwise stay for the life of the process.
        now = self.clock.now()
        self._sessions = {t: s for t, s in self._sessions.items() if s.expires > now}
        self._links = {t: link for t, link in self._links.items() if link[1] > now}

    @property
    def open_sessions(self) -> int:
        """How many sessions are kept (expired ones go at the next sign-in)."""
        return len(self._sessions)


def same_token(expected: str | None, given: str | None) -> bool:
    """Compare two CSRF tokens in constant time; a missing one never matches."""
    return bool(expected) and bool(given) and hmac.compare_digest(
        str(expected).encode(), str(given).encode())


def new_token() -> str:
    """A fresh random token (the sign-in form's CSRF cookie)."""
    return secrets.token_urlsafe(32)
