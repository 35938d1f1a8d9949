"""Routes of the simulator's subscriptions part."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

if TYPE_CHECKING:
    from m365sim.simulator import Simulator


def register(app: FastAPI, sim: Simulator) -> None:
    """Add this part's routes to the app."""
