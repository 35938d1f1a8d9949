"""The `jti` values of client assertions seen so far, kept until the assertion expires."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class AssertionLedger:
    """Remembers each assertion id with a digest of the assertion that carried it."""

    _seen: dict[str, tuple[str, datetime]] = field(default_factory=dict)

    def record(self, jti: str, assertion: str, expires: datetime, now: datetime, *,
               strict: bool) -> bool:
        """Note `jti`; False if it was seen before and this use counts as a replay.

        Strict: every second use is a replay. Otherwise only a *different* assertion with a
        known jti is: the same assertion sent again is what MSAL does on purpose.
        """
        self._forget_expired(now)
        digest = hashlib.sha256(assertion.encode()).hexdigest()
        known = self._seen.get(jti)
        if known is not None and (strict or known[0] != digest):
            return False
        if known is None or expires > known[1]:
            self._seen[jti] = (digest, expires)
        return True

    def _forget_expired(self, now: datetime) -> None:
        if len(self._seen) < 1024:
            return
        for jti in [j for j, (_, expires) in self._seen.items() if expires < now]:
            del self._seen[jti]
