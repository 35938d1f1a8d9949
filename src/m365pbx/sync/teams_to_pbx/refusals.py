"""Webhook POSTs we refused: logged with their reason (rate-limited), counted for /healthz.

A refused notification means presence stops changing in the PBX, so it must never be
silent; but a forger or a misconfigured tenant may send thousands, so each kind of refusal
is logged at most once a minute, with how many more came meanwhile. Reasons never hold
the secrets (client state, tokens) that were checked.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from m365pbx.clock import Clock

log = logging.getLogger(__name__)


@dataclass
class _Kind:
    """One kind of refusal: when it was last logged and how many since."""

    logged_at: float = float("-inf")
    unlogged: int = 0


class Refusals:
    """The refusals of the last 5 minutes, by kind, and their rate-limited log."""

    window = 300.0

    def __init__(self, clock: Clock, *, log_every: float = 60.0, keep: int = 10_000) -> None:
        self.clock = clock
        self.log_every = log_every
        self._recent: deque[tuple[float, str, int, str]] = deque(maxlen=keep)
        self._kinds: dict[str, _Kind] = {}

    def refuse(self, kind: str, status: int, reason: str, *, level: int = logging.WARNING,
               source: str | None = None) -> None:
        """Note one refused POST (`kind` is a short key, `reason` the words for admins)."""
        now = self.clock.now().timestamp()
        self._recent.append((now, kind, status, reason))
        state = self._kinds.setdefault(kind, _Kind())
        if now - state.logged_at < self.log_every:
            state.unlogged += 1
            return
        more = f" ({state.unlogged} more refused like this since the last line)" if (
            state.unlogged) else ""
        sender = f" from {source}" if source else ""
        log.log(level, "Graph notification refused with %d%s: %s%s", status, sender, reason,
                more)
        state.logged_at = now
        state.unlogged = 0

    def status(self) -> dict[str, Any]:
        """What /healthz shows: how many were refused lately, and why."""
        now = self.clock.now().timestamp()
        while self._recent and self._recent[0][0] < now - self.window:
            self._recent.popleft()
        reasons: dict[str, dict[str, Any]] = {}
        for at, kind, status, reason in self._recent:
            entry = reasons.setdefault(kind, {"count": 0})
            entry.update(status=status, last_reason=reason,
                         last_at=datetime.fromtimestamp(at, UTC).isoformat())
            entry["count"] += 1
        return {"refused_last_5_min": len(self._recent), "reasons": reasons}
