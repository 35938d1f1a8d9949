"""Refresh tokens: opaque strings Entra hands out with `offline_access`, kept in memory.

Each use returns a new refresh token and leaves the old one valid (refresh-tokens.md:
tokens are not revoked on use). A token dies when it was not used for the inactivity
window (AADSTS700082) or when the user's sessions were revoked after it was issued
(AADSTS50173, like Graph's revokeSignInSessions).
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from m365sim.errors import AadError


@dataclass
class RefreshGrant:
    """What a refresh token stands for."""

    token: str
    serial: int
    tenant_id: str
    app_id: str
    user_id: str
    # The Graph permissions and OpenID scopes granted when the chain started.
    scopes: tuple[str, ...]
    issued_at: datetime
    last_used: datetime


@dataclass
class RefreshTokenStore:
    """All refresh tokens of one simulator, with per-user revocation marks."""

    _grants: dict[str, RefreshGrant] = field(default_factory=dict)
    # (tenant id, user id) -> highest serial that is revoked.
    _revoked_up_to: dict[tuple[str, str], int] = field(default_factory=dict)
    _serials: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def issue(self, *, tenant_id: str, app_id: str, user_id: str, scopes: tuple[str, ...],
              now: datetime) -> str:
        """Make a new refresh token for a user and app."""
        token = "1.AQ" + secrets.token_urlsafe(96)
        self._grants[token] = RefreshGrant(token, next(self._serials), tenant_id, app_id,
                                           user_id, scopes, now, now)
        return token

    def peek(self, token: str) -> RefreshGrant | None:
        """The grant behind `token` without using it (to find its tenant and app)."""
        return self._grants.get(token)

    def redeem(self, token: str, *, app_id: str, now: datetime,
               inactivity: timedelta) -> RefreshGrant:
        """The grant behind `token`, marked as used; AadError if it cannot be used."""
        grant = self._grants.get(token)
        if grant is None or grant.app_id != app_id:
            raise AadError("invalid_grant", 70000)
        if grant.serial <= self._revoked_up_to.get((grant.tenant_id, grant.user_id), 0):
            raise AadError("invalid_grant", 50173)
        idle = now - grant.last_used
        if idle > inactivity:
            del self._grants[token]
            raise AadError("invalid_grant", 700082,
                           f"The token was issued on {grant.issued_at.isoformat()} and was "
                           f"inactive for {_span(idle)}.")
        grant.last_used = now
        return grant

    def revoke_user(self, tenant_id: str, user_id: str) -> int:
        """Invalidate every refresh token issued to the user so far; returns how many."""
        # Revoked tokens stay known so that they keep answering 50173, not 70000.
        live = self.tokens_of(tenant_id, user_id)
        self._revoked_up_to[(tenant_id, user_id)] = next(self._serials)
        return len(live)

    def tokens_of(self, tenant_id: str, user_id: str) -> list[RefreshGrant]:
        """The user's refresh tokens not revoked yet (for the control API and tests)."""
        revoked_up_to = self._revoked_up_to.get((tenant_id, user_id), 0)
        return [g for g in self._grants.values() if g.tenant_id == tenant_id
                and g.user_id == user_id and g.serial > revoked_up_to]


def _span(delta: timedelta) -> str:
    """A duration the way Entra prints it: d.hh:mm:ss."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{days}.{hours:02d}:{minutes:02d}:{seconds:02d}"
