"""Counters for input that was ignored or refused, so bad peers are visible without crashing
anything, and logged sparingly so a flood cannot flood the logs too."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BadInputCounter:
    """Counts dropped or refused input by reason (e.g. `oversized`, `xml`, `foreign-address`).

    Each reason is logged at its first occurrence, then at most once per `interval`
    seconds with how many more there were since.
    """

    counts: Counter[str] = field(default_factory=Counter)
    last_detail: str = ""
    what: str = "ignored SIP input"
    level: int = logging.INFO
    interval: float = 60.0
    _logged_at: dict[str, float] = field(default_factory=dict)
    _unlogged: Counter[str] = field(default_factory=Counter)

    def record(self, reason: str, detail: str = "") -> None:
        """Count one ignored input and remember what it was (for the logs and diagnostics)."""
        self.counts[reason] += 1
        self.last_detail = f"{reason}: {detail}" if detail else reason
        now = time.monotonic()
        last = self._logged_at.get(reason)
        if last is not None and now - last < self.interval:
            self._unlogged[reason] += 1
            return
        self._logged_at[reason] = now
        more = self._unlogged.pop(reason, 0)
        since = f" (and {more} more since the last such line)" if more else ""
        log.log(self.level, "%s (%s) %s%s", self.what, reason, detail, since)

    @property
    def total(self) -> int:
        """How many inputs were ignored so far."""
        return sum(self.counts.values())
