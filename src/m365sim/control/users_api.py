"""Control routes that change the directory as an admin would (and so drive delta)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from m365sim.control.common import json_object, tenant_named, user_named
from m365sim.directory.changes import create_user, delete_user, update_user
from m365sim.directory.state import directory_state
from m365sim.directory.user_spec import USER_SPEC

if TYPE_CHECKING:
    from m365sim.model import User
    from m365sim.simulator import Simulator

_SHOWN = (*USER_SPEC.default_select, "accountEnabled", "mailNickname", "proxyAddresses",
          "assignedPlans", "assignedLicenses", "onPremisesSamAccountName")


def shown(user: User) -> dict[str, object]:
    """A user as the control API answers with it."""
    return USER_SPEC.to_json(user, _SHOWN)


def register_user_routes(app: FastAPI, sim: Simulator) -> None:
    """Add user create / update / delete and the delta reset under `/_sim/tenants`."""

    @app.post("/_sim/tenants/{tenant}/users")
    async def create(tenant: str, request: Request) -> Response:
        target = tenant_named(sim, tenant)
        user = create_user(sim, target, await json_object(request))
        return JSONResponse(shown(user), status_code=201)

    @app.get("/_sim/tenants/{tenant}/users")
    async def listing(tenant: str) -> Response:
        # Everyone in the directory (soft-deleted users left out), for scripts and the
        # hand-run recipe in docs/simulator/running.md: no token needed, unlike Graph's /users.
        target = tenant_named(sim, tenant)
        users = [shown(u) for u in target.users.values() if not u.deleted]
        return JSONResponse({"value": users, "count": len(users)})

    @app.get("/_sim/tenants/{tenant}/users/{user}")
    async def read(tenant: str, user: str) -> Response:
        return JSONResponse(shown(user_named(tenant_named(sim, tenant), user)))

    @app.patch("/_sim/tenants/{tenant}/users/{user}")
    async def update(tenant: str, user: str, request: Request) -> Response:
        target = tenant_named(sim, tenant)
        found = user_named(target, user)
        return JSONResponse(shown(update_user(sim, target, found, await json_object(request))))

    @app.delete("/_sim/tenants/{tenant}/users/{user}")
    async def delete(tenant: str, user: str, request: Request) -> Response:
        target = tenant_named(sim, tenant)
        permanent = request.query_params.get("permanent", "false").lower() == "true"
        delete_user(sim, target, user_named(target, user), permanent=permanent)
        return Response(status_code=204)

    @app.post("/_sim/tenants/{tenant}/delta/reset")
    async def reset_delta(tenant: str) -> Response:
        # Every delta/skip token issued before now answers 410 Gone with a Location.
        target = tenant_named(sim, tenant)
        state = directory_state(sim)
        state.delta_epoch[target.id] += 1
        return JSONResponse({"tenant": target.id, "epoch": state.delta_epoch[target.id]})
