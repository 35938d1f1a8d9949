"""State and behaviour of the simulator's subscriptions part."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from m365sim.simulator import Simulator


class SubscriptionService:
    """The subscriptions part of the simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def run(self) -> None:
        """Do this part's time-driven work on the simulator's clock until cancelled."""
