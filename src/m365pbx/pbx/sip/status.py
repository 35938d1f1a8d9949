"""The visible state of a SIP connection, from the server's health and per-task problems.

Precedence (design.md rule 5: nothing fails silently): stopped; the server does not
answer (DEGRADED); any refused credentials (BAD_CREDENTIALS); any permanent failure
(ERROR); any failure being retried (DEGRADED); no answer yet (STARTING); else CONNECTED.
The text names the first problem of its kind and how many more there are; it never holds
a password (credentials only ever appear by username).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from datetime import datetime

from m365pbx.pbx.base import ConnectionState, ConnectionStatus
from m365pbx.pbx.sip.outcome import Outcome, OutcomeKind

log = logging.getLogger(__name__)

_BY_KIND = (
    (OutcomeKind.BAD_CREDENTIALS, ConnectionState.BAD_CREDENTIALS),
    (OutcomeKind.FAILED, ConnectionState.ERROR),
    (OutcomeKind.RETRY, ConnectionState.DEGRADED),
)


class StatusBoard:
    """Keeps the problems of publications and subscriptions and derives the status."""

    def __init__(self, name: str, now: Callable[[], datetime]) -> None:
        self.name = name
        self._now = now
        self.problems: dict[Hashable, Outcome] = {}
        self._state = ConnectionState.STOPPED
        self._since = now()
        self._error: str | None = None

    def record(self, key: Hashable, outcome: Outcome) -> None:
        """Remember the outcome of the task `key` (a success clears its problem)."""
        if outcome.ok:
            self.problems.pop(key, None)
        else:
            self.problems[key] = outcome

    def forget(self, key: Hashable) -> None:
        """Drop the problem of a task that no longer exists."""
        self.problems.pop(key, None)

    def _derive(
        self, *, running: bool, server_up: bool | None, server_error: str
    ) -> tuple[ConnectionState, str | None]:
        if not running:
            return ConnectionState.STOPPED, None
        if server_up is False:
            return ConnectionState.DEGRADED, server_error
        for kind, state in _BY_KIND if self.problems else ():
            found = [o.detail for o in self.problems.values() if o.kind is kind]
            if found:
                more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
                return state, found[0] + more
        if server_up is None:
            return ConnectionState.STARTING, None
        return ConnectionState.CONNECTED, None

    def update(self, *, running: bool, server_up: bool | None, server_error: str) -> None:
        """Recompute the state; `since` moves only when the state changes."""
        state, error = self._derive(running=running, server_up=server_up, server_error=server_error)
        if state != self._state:
            log.info("%s: %s -> %s %s", self.name, self._state, state, error or "")
            self._state = state
            self._since = self._now()
        self._error = error

    def status(self) -> ConnectionStatus:
        """The state, the last error in words (None when connected) and since when."""
        return ConnectionStatus(self._state, self._error, self._since)
