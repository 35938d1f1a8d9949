"""Helpers for control routes: JSON bodies, tenants and users named in the path."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import Request

from m365sim.errors import GraphError

if TYPE_CHECKING:
    from m365sim.model import Tenant, User
    from m365sim.simulator import Simulator


async def json_body(request: Request, *, required: bool = True) -> Any:
    """The request's JSON body; Graph's 400 when it is missing or not JSON."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise GraphError(400, "BadRequest", "A JSON request body is required.")
        return {}
    content_type = request.headers.get("content-type", "application/json")
    if "json" not in content_type.lower():
        raise GraphError(415, "UnsupportedMediaType",
                         f"Content type '{content_type}' is not supported; send JSON.")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise GraphError(400, "BadRequest", f"The request body is not valid JSON: {exc}") from None


async def json_object(request: Request, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON body, which must be an object."""
    body = await json_body(request, required=required)
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "The request body must be a JSON object.")
    return body


def tenant_named(sim: Simulator, name: str) -> Tenant:
    """The tenant with this id or verified domain; 404 otherwise."""
    tenant = sim.directory.find_tenant(name)
    if tenant is None:
        raise GraphError(404, "ResourceNotFound", f"Tenant '{name}' does not exist.")
    return tenant


def user_named(tenant: Tenant, name: str) -> User:
    """The live user with this id or UPN; 404 with Graph's directory message otherwise."""
    user = tenant.find_user(name)
    if user is None:
        raise GraphError(404, "Request_ResourceNotFound",
                         f"Resource '{name}' does not exist or one of its queried "
                         f"reference-property objects are not present.")
    return user


def number(body: dict[str, Any], key: str, default: float | None = None) -> float:
    """A numeric field of a control body; 400 if missing or not a number."""
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GraphError(400, "BadRequest", f"'{key}' must be a number.")
    return float(value)
