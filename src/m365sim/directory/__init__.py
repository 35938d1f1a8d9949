"""The directory part: users, groups, `/users/delta`, OData queries, and `$batch`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

if TYPE_CHECKING:
    from m365sim.simulator import Simulator


def register(app: FastAPI, sim: Simulator) -> None:
    """Add this part's routes to the app."""
    from m365sim.batch import register_batch_route
    from m365sim.directory.delta import register_delta_routes
    from m365sim.directory.groups import register_group_routes
    from m365sim.directory.org_contacts import register_org_contact_routes
    from m365sim.directory.users import register_user_routes

    # `/users/delta` and `/users/$count` before `/users/{id}`: routes match in order.
    register_delta_routes(app, sim)
    register_user_routes(app, sim)
    register_group_routes(app, sim)
    register_org_contact_routes(app, sim)
    register_batch_route(app, sim)
