"""Control routes of the Entra part: act as the person at the device-login page, revoke
sessions, add a client secret, rotate the signing keys (all under `/_sim`, errors as Graph
error bodies)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from m365sim.entra.devicecode_store import DeviceFlow, FlowState
from m365sim.entra.scopes import consented_permissions, parse_delegated
from m365sim.entra.signin import check_account, check_policies, find_user
from m365sim.entra.state import entra_of
from m365sim.entra.tenants import find_app
from m365sim.errors import AadError, GraphError
from m365sim.model import ClientSecret, Tenant, User

if TYPE_CHECKING:
    from m365sim.simulator import Simulator


async def json_object(request: Request) -> dict[str, Any]:
    """The JSON object body of a control request; Graph's BadRequest otherwise."""
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise GraphError(400, "BadRequest", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "The request body must be a JSON object.")
    return body


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise GraphError(400, "BadRequest", f"'{name}' is required (a string).")
    return value


def _pending_flow(sim: Simulator, user_code: str) -> DeviceFlow:
    flow = entra_of(sim).device_codes.by_user_code(user_code)
    if flow is None:
        raise GraphError(404, "ResourceNotFound", f"No device sign-in has the code "
                         f"'{user_code}'.")
    if flow.expired(sim.clock.now()):
        raise GraphError(400, "BadRequest", "AADSTS70019: Verification code expired.")
    if flow.state is not FlowState.PENDING:
        raise GraphError(409, "Conflict", "AADSTS90120: The request was already authorized "
                         "or declined.")
    return flow


def approve_device_code(sim: Simulator, user_code: str, upn: str) -> DeviceFlow:
    """Sign `upn` in at the device-login page for the flow with `user_code`.

    Everything the person would see fail in the browser (unknown or disabled account,
    Conditional Access, missing consent) fails here with the AADSTS text; the flow stays
    pending. MFA is satisfied: the browser sign-in is interactive.
    """
    flow = _pending_flow(sim, user_code)
    tenant = sim.directory.find_tenant(flow.tenant_segment) or sim.directory.tenant_of_upn(upn)
    try:
        if tenant is None:
            raise AadError("invalid_grant", 50034, upn)
        user = find_user(tenant, upn)
        check_account(user)
        check_policies(user, interactive=True)
        app = find_app(tenant, flow.app_id)
        consented_permissions(app, parse_delegated(flow.scope, app.delegated_consent))
    except AadError as refused:
        raise GraphError(400, "BadRequest", refused.description) from None
    flow.state = FlowState.APPROVED
    flow.tenant_id, flow.user_id = tenant.id, user.id
    return flow


def decline_device_code(sim: Simulator, user_code: str) -> DeviceFlow:
    """The person cancels at the device-login page: the client gets authorization_declined."""
    flow = _pending_flow(sim, user_code)
    flow.state = FlowState.DECLINED
    return flow


def _tenant_user(sim: Simulator, tenant_ref: str, user_ref: str) -> tuple[Tenant, User]:
    tenant = sim.directory.find_tenant(tenant_ref)
    if tenant is None:
        raise GraphError(404, "Request_ResourceNotFound", f"Tenant '{tenant_ref}' not found.")
    user = tenant.find_user(user_ref)
    if user is None:
        raise GraphError(404, "Request_ResourceNotFound", f"Resource '{user_ref}' does not "
                         "exist or one of its queried reference-property objects are not "
                         "present.")
    return tenant, user


def _when(value: object, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise GraphError(400, "BadRequest", f"'{name}' is not an ISO 8601 date.") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def router(sim: Simulator) -> APIRouter:
    """The Entra control routes."""
    routes = APIRouter(prefix="/_sim")

    @routes.post("/devicecode/approve")
    async def _approve(request: Request) -> JSONResponse:
        body = await json_object(request)
        flow = approve_device_code(sim, _text(body, "user_code"), _text(body, "upn"))
        return JSONResponse({"user_code": flow.user_code, "state": flow.state.value,
                             "tenant_id": flow.tenant_id, "user_id": flow.user_id})

    @routes.post("/devicecode/deny")
    async def _deny(request: Request) -> JSONResponse:
        body = await json_object(request)
        flow = decline_device_code(sim, _text(body, "user_code"))
        return JSONResponse({"user_code": flow.user_code, "state": flow.state.value})

    @routes.post("/tenants/{tenant}/users/{user}/revokeSignInSessions")
    async def _revoke(tenant: str, user: str) -> JSONResponse:
        found_tenant, found_user = _tenant_user(sim, tenant, user)
        count = entra_of(sim).refresh_tokens.revoke_user(found_tenant.id, found_user.id)
        return JSONResponse({"value": True, "revoked_refresh_tokens": count})

    @routes.post("/signing-keys/rotate")
    async def _rotate_keys(request: Request) -> JSONResponse:
        body = await json_object(request)
        retire = body.get("retire_previous", False)
        if not isinstance(retire, bool):
            raise GraphError(400, "BadRequest", "'retire_previous' must be true or false.")
        key = sim.issuer.rotate(retire_previous=retire)
        return JSONResponse({"kid": key.kid, "published": [k.kid for k in sim.issuer.published]})

    @routes.post("/tenants/{tenant}/apps/{app_id}/secrets")
    async def _add_secret(tenant: str, app_id: str, request: Request) -> JSONResponse:
        found = sim.directory.find_tenant(tenant)
        app = found.apps.get(app_id) if found else None
        if found is None or app is None:
            raise GraphError(404, "Request_ResourceNotFound",
                             f"No application '{app_id}' in tenant '{tenant}'.")
        body = await json_object(request)
        now = sim.clock.now()
        expires = _when(body.get("expires"), "expires") or now + timedelta(days=180)
        secret = ClientSecret(value=_text(body, "value"), expires_at=expires, created_at=now)
        app.secrets.append(secret)
        return JSONResponse({"keyId": secret.key_id, "endDateTime": expires.isoformat(),
                             "startDateTime": now.isoformat()}, status_code=201)

    return routes
