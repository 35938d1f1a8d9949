"""Counters for input that was ignored, so bad peers are visible without crashing anything."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BadInputCounter:
    """Counts dropped or refused input by reason (e.g. `oversized`, `xml`, `unknown-event`)."""

    counts: Counter[str] = field(default_factory=Counter)
    last_detail: str = ""

    def record(self, reason: str, detail: str = "") -> None:
        """Count one ignored input and remember what it was (for the logs and diagnostics)."""
        self.counts[reason] += 1
        self.last_detail = f"{reason}: {detail}" if detail else reason
        log.info("ignored SIP input (%s) %s", reason, detail)

    @property
    def total(self) -> int:
        """How many inputs were ignored so far."""
        return sum(self.counts.values())
