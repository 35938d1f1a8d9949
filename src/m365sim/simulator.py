"""The Simulator: one object holding the clock, the directory and every service."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from m365sim.clock import Clock, WallClock
from m365sim.events import ChangeBus
from m365sim.faults import FaultInjector
from m365sim.model import Directory
from m365sim.outlook.service import OutlookService
from m365sim.presence.service import PresenceService
from m365sim.subscriptions.service import SubscriptionService
from m365sim.tokens import SigningKey, TokenIssuer


@dataclass
class SimSettings:
    """Knobs of one simulator instance."""

    # Where clients reach us; used in discovery documents and @odata.nextLink.
    base_url: str = "https://127.0.0.1:8443"
    access_token_lifetime_s: int = 3599
    # Seconds added to the Date header, to test clock-skew detection.
    date_skew_s: float = 0.0
    # Latency of notifications in seconds: (min, max); Microsoft's presence latency is
    # "typically well under a minute" (graph.md 4.5); tests use milliseconds.
    notification_latency_s: tuple[float, float] = (1.0, 10.0)
    extra: dict[str, object] = field(default_factory=dict)


class Simulator:
    """Entra ID + Graph in one process, on one clock."""

    def __init__(
        self,
        clock: Clock | None = None,
        settings: SimSettings | None = None,
        *,
        signing_key: SigningKey | None = None,
    ) -> None:
        self.clock: Clock = clock or WallClock()
        self.settings = settings or SimSettings()
        self.directory = Directory()
        self.issuer = TokenIssuer(signing_key, issuer_base=self.settings.base_url)
        self.bus = ChangeBus()
        self.faults = FaultInjector(self)
        self.presence = PresenceService(self)
        self.outlook = OutlookService(self)
        self.subscriptions = SubscriptionService(self)

    @property
    def base_url(self) -> str:
        """Where clients reach the simulator (no trailing slash)."""
        return self.settings.base_url.rstrip("/")

    def set_base_url(self, url: str) -> None:
        """Tell the simulator where it is served (known only once the port is bound)."""
        self.settings.base_url = url.rstrip("/")
        self.issuer.issuer_base = self.settings.base_url

    async def run(self) -> None:
        """Run the services' time-driven work (expiries, deliveries, meetings) until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.presence.run())
            group.create_task(self.subscriptions.run())
            group.create_task(self.outlook.run())
