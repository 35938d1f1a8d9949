"""Throttling and injected faults (429 with Retry-After, 503/504), per Graph's limits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

if TYPE_CHECKING:
    from m365sim.simulator import Simulator


class FaultInjector:
    """Decides, per request, whether Graph would throttle or fail it."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def install(self, app: FastAPI) -> None:
        """Add the middleware that applies limits and injected faults."""
