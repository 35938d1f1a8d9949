"""`/{tenant}/oauth2/v2.0/token` and `/{tenant}/oauth2/v2.0/devicecode`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response

from m365sim.entra.forms import read_client_credential, read_form
from m365sim.entra.grants import GRANTS, TokenRequest, check_claims
from m365sim.entra.issue import token_json
from m365sim.entra.scopes import parse_delegated
from m365sim.entra.state import entra_of
from m365sim.entra.tenants import (
    find_app,
    find_app_anywhere,
    refuse_consumers,
    resolve_authority,
)
from m365sim.errors import AadError

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

# What a person is told to open; the simulator approves through its control API instead
# (POST /_sim/devicecode/approve), but clients show Microsoft's text.
VERIFICATION_URI = "https://microsoft.com/devicelogin"


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


async def token(sim: Simulator, segment: str, request: Request) -> Response:
    """The token endpoint: parse, pick the grant, answer with tokens or Entra's error."""
    form = await read_form(request)
    authority = resolve_authority(sim, segment)
    grant_type = form.require("grant_type")
    credential = read_client_credential(form, request.headers.get("authorization"))
    grant = GRANTS.get(grant_type)
    if grant is None:
        raise AadError("unsupported_grant_type", 70003, grant_type)
    check_claims(form)
    context = TokenRequest(sim, entra_of(sim), authority, form, credential, _origin(request))
    return token_json(grant(context))


async def devicecode(sim: Simulator, segment: str, request: Request) -> Response:
    """Start a device-code sign-in (v2-oauth2-device-code.md, "Device authorization")."""
    form = await read_form(request)
    authority = resolve_authority(sim, segment)
    client_id = form.require("client_id")
    scope = form.require("scope")
    refuse_consumers(authority, client_id)
    if authority.tenant is not None:
        find_app(authority.tenant, client_id)
    else:
        find_app_anywhere(sim, client_id)
    parse_delegated(scope, {p for t in sim.directory.tenants.values()
                            for a in t.apps.values() for p in a.delegated_consent})
    state = entra_of(sim)
    settings = state.settings
    flow = state.device_codes.start(
        tenant_segment=segment, app_id=client_id, scope=scope, now=sim.clock.now(),
        lifetime_s=settings.device_code_lifetime_s, interval_s=settings.device_code_interval_s,
        user_code_length=settings.user_code_length)
    body: dict[str, Any] = {
        "device_code": flow.device_code,
        "user_code": flow.user_code,
        "verification_uri": VERIFICATION_URI,
        "expires_in": settings.device_code_lifetime_s,
        "interval": settings.device_code_interval_s,
        "message": f"To sign in, use a web browser to open the page {VERIFICATION_URI} and "
                   f"enter the code {flow.user_code} to authenticate.",
    }
    return token_json(body)


def router(sim: Simulator) -> APIRouter:
    """The token and device-code routes (POST only, as Entra)."""
    routes = APIRouter()

    @routes.post("/{tenant}/oauth2/v2.0/token")
    async def _token(tenant: str, request: Request) -> Response:
        return await token(sim, tenant, request)

    @routes.post("/{tenant}/oauth2/v2.0/devicecode")
    async def _devicecode(tenant: str, request: Request) -> Response:
        return await devicecode(sim, tenant, request)

    @routes.api_route("/{tenant}/oauth2/v2.0/token", methods=["GET", "PUT", "PATCH", "DELETE"])
    @routes.api_route("/{tenant}/oauth2/v2.0/devicecode",
                      methods=["GET", "PUT", "PATCH", "DELETE"])
    async def _wrong_method(tenant: str, request: Request) -> Response:
        raise AadError("invalid_request", 900561, request.method)

    return routes
