"""Routes of the simulator's subscriptions part: Graph's /subscriptions endpoints and the
control routes for subscriptions and notification delivery."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

if TYPE_CHECKING:
    from m365sim.simulator import Simulator


def register(app: FastAPI, sim: Simulator) -> None:
    """Add this part's routes to the app."""
    from m365sim.subscriptions.control import register_control_routes
    from m365sim.subscriptions.routes import register_graph_routes

    register_graph_routes(app, sim)
    register_control_routes(app, sim)
