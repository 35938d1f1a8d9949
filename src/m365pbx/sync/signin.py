"""How signing in goes for one app credential, as the tenant's state shows it.

The Graph clients ask their token source for a token before every request, so wrapping
the source sees every sign-in: the first failure turns the tenant's light red with
Entra's reason, its AADSTS code and the fix (graph/errors.py), the first success after
that turns it back, and only those changes are logged (a retry loop must not flood the
log with the same sentence).
"""

from __future__ import annotations

import logging
from datetime import datetime

from m365pbx.clock import Clock
from m365pbx.graph.auth import TokenSource
from m365pbx.graph.errors import SignInError

log = logging.getLogger(__name__)


class WatchedTokens:
    """A TokenSource that remembers whether signing in works, since when, and why not."""

    def __init__(self, source: TokenSource, clock: Clock, *, label: str) -> None:
        self.source = source
        self.clock = clock
        self.label = label
        self.signed_in: bool | None = None  # None: not tried yet
        self.error: SignInError | None = None
        self.since: datetime = clock.now()

    async def token(self) -> str:
        """A token from the wrapped source; a refusal is noted and raised."""
        try:
            token = await self.source.token()
        except SignInError as exc:
            self._failed(exc)
            raise
        if self.signed_in is not True:
            if self.signed_in is False:
                log.warning("%s: signed in again", self.label)
            self.signed_in, self.error, self.since = True, None, self.clock.now()
        return token

    async def invalidate(self) -> None:
        """Drop cached tokens of the wrapped source."""
        await self.source.invalidate()

    def _failed(self, exc: SignInError) -> None:
        if self.signed_in is not False or self.error is None or (
            self.error.describe() != exc.describe()
        ):
            log.warning("%s: signing in failed: %s", self.label, exc.describe())
        if self.signed_in is not False:
            self.since = self.clock.now()
        self.signed_in, self.error = False, exc

    def failure(self) -> str | None:
        """'signing in failed: <reason, AADSTS code, the fix>' while it fails, else None."""
        if self.signed_in is not False or self.error is None:
            return None
        reason = self.error.describe().removeprefix("sign-in refused: ")
        return f"signing in failed: {reason}"
