"""Core control routes under `/_sim/`: health, scenario, generation, clock, faults, users.

The other parts add their own `/_sim/...` routes from their own packages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

if TYPE_CHECKING:
    from m365sim.simulator import Simulator


def register(app: FastAPI, sim: Simulator) -> None:
    """Add this part's routes to the app."""
    from m365sim.control.core import register_core_routes
    from m365sim.control.faults_api import register_fault_routes
    from m365sim.control.users_api import register_user_routes

    register_core_routes(app, sim)
    register_fault_routes(app, sim)
    register_user_routes(app, sim)
