"""Core control routes: health, scenario loading, tenant generation, the clock."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from m365sim.clock import VirtualClock
from m365sim.control.common import json_object, number, tenant_named
from m365sim.directory.generate import generate_users
from m365sim.errors import GraphError
from m365sim.scenario import ScenarioError, load_scenario

if TYPE_CHECKING:
    from m365sim.model import Tenant
    from m365sim.simulator import Simulator


def tenant_summary(tenant: Tenant) -> dict[str, Any]:
    """A tenant as the control API lists it."""
    return {"id": tenant.id, "name": tenant.display_name, "domains": list(tenant.domains),
            "users": sum(1 for u in tenant.users.values() if not u.deleted),
            "groups": len(tenant.groups), "apps": sorted(tenant.apps)}


def clock_state(sim: Simulator) -> dict[str, Any]:
    """The simulator's time as the control API reports it."""
    return {"now": sim.clock.now().isoformat(), "virtual": isinstance(sim.clock, VirtualClock),
            "date_skew_s": sim.settings.date_skew_s}


def register_core_routes(app: FastAPI, sim: Simulator) -> None:
    """Add health, scenario, generate and clock routes under `/_sim`."""

    @app.get("/_sim/health")
    async def health() -> Response:
        return JSONResponse({"status": "ok", "now": sim.clock.now().isoformat()})

    @app.get("/_sim/tenants")
    async def tenants() -> Response:
        return JSONResponse({"tenants": [tenant_summary(t)
                                         for t in sim.directory.tenants.values()]})

    @app.post("/_sim/scenario")
    async def scenario(request: Request) -> Response:
        body = await json_object(request)
        try:
            loaded = load_scenario(sim, body)
        except (ScenarioError, ValueError) as exc:
            raise GraphError(400, "BadRequest", str(exc)) from None
        return JSONResponse({"tenants": [tenant_summary(t) for t in loaded]})

    @app.post("/_sim/tenants/{tenant}/generate")
    async def generate(tenant: str, request: Request) -> Response:
        target = tenant_named(sim, tenant)
        body = await json_object(request)
        if "users" not in body:
            raise GraphError(400, "BadRequest", "'users' (how many to generate) is required.")
        started = time.perf_counter()
        try:
            created = generate_users(sim, target, **body)
        except (TypeError, ValueError) as exc:
            raise GraphError(400, "BadRequest", f"Cannot generate users: {exc}") from None
        return JSONResponse({"tenant": target.id, "generated": len(created),
                             "seconds": round(time.perf_counter() - started, 3),
                             "first": created[0].user_principal_name if created else None,
                             **{"total_users": tenant_summary(target)["users"]}})

    @app.get("/_sim/clock")
    async def clock() -> Response:
        return JSONResponse(clock_state(sim))

    @app.post("/_sim/clock/advance")
    async def advance(request: Request) -> Response:
        body = await json_object(request)
        seconds = number(body, "seconds")
        if seconds < 0:
            raise GraphError(400, "BadRequest", "'seconds' must not be negative.")
        if not isinstance(sim.clock, VirtualClock):
            raise GraphError(409, "Conflict", "The simulator runs on the wall clock; only a "
                                              "virtual clock can be advanced.")
        await sim.clock.advance(seconds)
        return JSONResponse(clock_state(sim))

    @app.post("/_sim/clock/skew")
    async def skew(request: Request) -> Response:
        body = await json_object(request)
        sim.settings.date_skew_s = number(body, "seconds")
        return JSONResponse(clock_state(sim))
