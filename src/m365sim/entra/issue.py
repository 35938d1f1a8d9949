"""Successful token answers: access token, refresh token, id_token and client_info."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from fastapi.responses import JSONResponse

from m365sim.entra.scopes import DelegatedRequest, granted_scope_string
from m365sim.entra.state import entra_of
from m365sim.model import AppRegistration, Tenant, User
from m365sim.tokens import b64url

if TYPE_CHECKING:
    from m365sim.simulator import Simulator


def token_json(body: dict[str, Any]) -> JSONResponse:
    """A token endpoint answer with the headers Entra sends (no caching, request id)."""
    headers = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache",
               "x-ms-request-id": str(uuid.uuid4()), "x-ms-ests-server": "m365sim"}
    return JSONResponse(body, headers=headers)


def app_token(sim: Simulator, tenant: Tenant, app: AppRegistration) -> dict[str, Any]:
    """The client-credentials answer: an application token with the app's roles."""
    lifetime = sim.settings.access_token_lifetime_s
    token = sim.issuer.access_token(
        tenant_id=tenant.id, app_id=app.app_id, now=sim.clock.now(),
        lifetime=timedelta(seconds=lifetime), roles=sorted(app.application_roles))
    return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
            "access_token": token}


@dataclass(frozen=True)
class UserGrant:
    """Everything a delegated answer is made from."""

    tenant: Tenant
    app: AppRegistration
    user: User
    permissions: tuple[str, ...]
    request: DelegatedRequest
    client_info: bool


def user_token(sim: Simulator, grant: UserGrant) -> dict[str, Any]:
    """A delegated answer (ROPC, device code, refresh): scp, scope and the extras asked for."""
    now = sim.clock.now()
    lifetime = sim.settings.access_token_lifetime_s
    oidc_in_scp = [s for s in ("openid", "profile", "email") if s in grant.request.oidc]
    access = sim.issuer.access_token(
        tenant_id=grant.tenant.id, app_id=grant.app.app_id, now=now,
        lifetime=timedelta(seconds=lifetime), user_id=grant.user.id,
        upn=grant.user.user_principal_name, scopes=[*grant.permissions, *oidc_in_scp])
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": granted_scope_string(grant.permissions, grant.request),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access,
    }
    if grant.request.offline:
        body["refresh_token"] = entra_of(sim).refresh_tokens.issue(
            tenant_id=grant.tenant.id, app_id=grant.app.app_id, user_id=grant.user.id,
            scopes=(*grant.permissions, *grant.request.oidc), now=now)
    if grant.request.openid:
        body["id_token"] = id_token(sim, grant)
    if grant.client_info:
        info = {"uid": grant.user.id, "utid": grant.tenant.id}
        body["client_info"] = b64url(json.dumps(info, separators=(",", ":")).encode())
    return body


def id_token(sim: Simulator, grant: UserGrant) -> str:
    """A signed v2.0 id_token with the claims MSAL reads (oid, tid, preferred_username)."""
    now = int(sim.clock.now().timestamp())
    user, tenant = grant.user, grant.tenant
    # `sub` is pairwise: stable per user and app, different across apps.
    pairwise = hashlib.sha256(f"{user.id}:{grant.app.app_id}".encode()).digest()
    claims: dict[str, Any] = {
        "aud": grant.app.app_id,
        "iss": sim.issuer.issuer(tenant.id),
        "iat": now,
        "nbf": now,
        "exp": now + entra_of(sim).settings.id_token_lifetime_s,
        "name": user.display_name,
        "oid": user.id,
        "preferred_username": user.user_principal_name,
        "sub": base64.urlsafe_b64encode(pairwise).rstrip(b"=").decode()[:43],
        "tid": tenant.id,
        "uti": b64url(uuid.uuid4().bytes),
        "ver": "2.0",
    }
    if "email" in grant.request.oidc and user.mail:
        claims["email"] = user.mail
    return sim.issuer.sign(claims)
