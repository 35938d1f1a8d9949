"""Which people get Teams presence by notification, and what happens to the others.

`auto` polls people whose notifications do not flow (their service account fails, or no
account can carry them) at the polling pace; `webhook` does not, and says so: in /healthz
and in a warning each time their number changes (docs/configuration.md, teams_to_pbx.mode).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from m365pbx.clock import Clock
from m365pbx.core.durations import format_duration

log = logging.getLogger(__name__)

CHECK_EVERY = 15.0  # seconds between looks at the subscriptions' health


class NotificationCoverage:
    """Counts the people without flowing notifications and reports them for one tenant."""

    def __init__(self, tenant: str, mode: str, uncovered: Callable[[], Sequence[str]] | None,
                 clock: Clock, *, reconcile_interval: float) -> None:
        self.tenant = tenant
        self.mode = mode  # "polling", "auto" or "webhook"
        self.uncovered = uncovered
        self.clock = clock
        self.reconcile_interval = reconcile_interval
        self._reported = 0
        self._seen = 0
        self.since = clock.now()  # when the number last changed

    def without_notifications(self) -> int:
        """People of this tenant whose presence notifications are not flowing now."""
        count = len(self.uncovered()) if self.uncovered is not None else 0
        if count != self._seen:
            self._seen, self.since = count, self.clock.now()
        return count

    def problem(self, count: int) -> str | None:
        """What an admin must know about `count` people without notifications, if anything."""
        if not count or self.mode != "webhook":
            return None
        every = format_duration(timedelta(seconds=self.reconcile_interval))
        return (f"{count} people get no presence notifications (see the service accounts' "
                "subscriptions) and are not polled, as teams_to_pbx.mode is 'webhook': their "
                f"Teams presence reaches the PBX only at the reconciliation every {every}. "
                "Fix the subscriptions, or set mode 'auto' to poll them meanwhile")

    def health(self) -> dict[str, Any]:
        """The /healthz entry: mode, people without notifications, the problem in words."""
        count = self.without_notifications()
        return {"mode": self.mode, "without_notifications": count,
                "error": self.problem(count), "since": self.since.isoformat()}

    def check(self) -> None:
        """Log a change in the number of people without notifications (webhook mode)."""
        count = self.without_notifications()
        if count == self._reported or self.mode != "webhook":
            return
        self._reported = count
        if count:
            log.warning("tenant %s: %s", self.tenant, self.problem(count))
        else:
            log.info("tenant %s: every person gets presence notifications again", self.tenant)

    async def run(self) -> None:
        """Check now and then until cancelled."""
        while True:
            await self.clock.sleep(CHECK_EVERY)
            self.check()

