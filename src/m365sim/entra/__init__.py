"""Entra ID: discovery, the token endpoint with its grants, device codes, and control routes.

Public helpers for other parts and tests: `entra_of(sim)` (settings and stores),
`approve_device_code`, `decline_device_code`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from m365sim.entra import control, discovery, endpoints
from m365sim.entra.control import approve_device_code, decline_device_code
from m365sim.entra.state import EntraSettings, EntraState, entra_of

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

__all__ = ["EntraSettings", "EntraState", "approve_device_code", "decline_device_code",
           "entra_of", "register"]


def register(app: FastAPI, sim: Simulator) -> None:
    """Add this part's routes to the app."""
    app.include_router(discovery.router(sim))
    app.include_router(endpoints.router(sim))
    app.include_router(control.router(sim))
