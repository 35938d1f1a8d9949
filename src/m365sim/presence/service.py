"""State and behaviour of the simulator's presence part."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from m365sim.model import Tenant, User
    from m365sim.simulator import Simulator


class PresenceService:
    """The presence part of the simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def run(self) -> None:
        """Do this part's time-driven work on the simulator's clock until cancelled."""

    def load_user(self, tenant: Tenant, user: User, presence: Any) -> None:
        """Set a scenario user's initial Teams client state."""
