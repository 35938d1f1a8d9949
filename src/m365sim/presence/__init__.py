"""The simulator's presence part: Teams presence as Microsoft documents it (graph.md 3).

Public surface for the other parts: `PresenceService` (`sim.presence`) with
`set_calendar_activity(tenant_id, user_id, activity)` for the outlook part and
`load_user(tenant, user, presence)` for scenarios and generated tenants; it publishes
`communications/presences/{id}` ResourceChanges on `sim.bus`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from m365sim.presence.control import register_control_routes
from m365sim.presence.routes import register_graph_routes

if TYPE_CHECKING:
    from m365sim.simulator import Simulator


def register(app: FastAPI, sim: Simulator) -> None:
    """Add this part's routes to the app: Graph presence endpoints and control routes."""
    register_graph_routes(app, sim)
    register_control_routes(app, sim)
