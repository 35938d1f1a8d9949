"""The grant types of `POST /{tenant}/oauth2/v2.0/token` (graph.md 1.1)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from m365sim.entra.clients import authenticate_client, token_endpoint_audiences
from m365sim.entra.devicecode_store import FlowState
from m365sim.entra.forms import ClientCredential, Form
from m365sim.entra.issue import UserGrant, app_token, user_token
from m365sim.entra.scopes import (
    DelegatedRequest,
    check_app_scope,
    consented_permissions,
    parse_delegated,
)
from m365sim.entra.signin import check_account, check_password, check_policies, find_user
from m365sim.entra.state import EntraState
from m365sim.entra.tenants import Authority, find_app, find_app_anywhere, refuse_consumers
from m365sim.errors import AadError
from m365sim.model import AppRegistration, Tenant

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass(frozen=True)
class TokenRequest:
    """One call of the token endpoint, parsed."""

    sim: Simulator
    state: EntraState
    authority: Authority
    form: Form
    credential: ClientCredential
    origin: str

    @property
    def client_id(self) -> str:
        """The client id (body or Basic); AADSTS900144 when missing."""
        if self.credential.client_id is None:
            raise AadError("invalid_request", 900144, "client_id")
        return self.credential.client_id

    def authenticate(self, tenant: Tenant, app: AppRegistration, *,
                     credential_required: bool) -> None:
        """Check the client credential for `app` (see clients.authenticate_client)."""
        origins = {self.sim.base_url, self.origin}
        authenticate_client(
            self.state, app, self.credential, now=self.sim.clock.now(),
            audiences=token_endpoint_audiences(origins, tenant, self.authority.segment),
            credential_required=credential_required)

    def delegated(self, scope: str) -> DelegatedRequest:
        """Parse a delegated scope, knowing every permission a scenario app mentions."""
        extra = {p for t in self.sim.directory.tenants.values() for a in t.apps.values()
                 for p in (*a.delegated_consent, *a.application_roles)}
        return parse_delegated(scope, extra)

    @property
    def wants_client_info(self) -> bool:
        """MSAL sends client_info=1 to get `client_info` back."""
        return self.form.get("client_info") == "1"


def check_claims(form: Form) -> None:
    """The `claims` parameter must be a JSON object (MSAL sends `xms_cc` capabilities)."""
    claims = form.get("claims")
    if claims is None:
        return
    try:
        parsed = json.loads(claims)
    except ValueError:
        raise AadError("invalid_request", 90100, "claims") from None
    if not isinstance(parsed, dict):
        raise AadError("invalid_request", 90100, "claims")


def client_credentials(req: TokenRequest) -> dict[str, Any]:
    """Application token for `<graph>/.default`, with a secret or a certificate."""
    refuse_consumers(req.authority, req.client_id)
    tenant = req.authority.tenant
    if tenant is None:
        # No user to take the tenant from: /common and /organizations cannot work.
        raise AadError("invalid_request", 50059)
    app = find_app(tenant, req.client_id)
    req.authenticate(tenant, app, credential_required=True)
    check_app_scope(req.form.require("scope"))
    return app_token(req.sim, tenant, app)


def password(req: TokenRequest) -> dict[str, Any]:
    """Resource owner password credentials (v2-oauth-ropc.md)."""
    refuse_consumers(req.authority, req.client_id)
    if req.authority.alias == "common":
        raise AadError("invalid_request", 9001023)
    username = req.form.require("username")
    secret = req.form.require("password")
    tenant = req.authority.tenant or req.sim.directory.tenant_of_upn(username)
    if tenant is None:
        raise AadError("invalid_grant", 50034, username)
    app = find_app(tenant, req.client_id)
    req.authenticate(tenant, app, credential_required=False)
    request = req.delegated(req.form.require("scope"))
    user = find_user(tenant, username)
    check_password(user, secret)
    check_account(user)
    check_policies(user, interactive=False)
    permissions = consented_permissions(app, request)
    return user_token(req.sim, UserGrant(tenant, app, user, permissions, request,
                                         req.wants_client_info))


def refresh_token(req: TokenRequest) -> dict[str, Any]:
    """Redeem a refresh token; the answer carries a new one (the old stays valid)."""
    refuse_consumers(req.authority, req.client_id)
    token = req.form.require("refresh_token")
    store = req.state.refresh_tokens
    peeked = store.peek(token)
    if peeked is None or peeked.app_id.lower() != req.client_id.lower():
        raise AadError("invalid_grant", 70000)
    tenant = req.sim.directory.tenants.get(peeked.tenant_id)
    if tenant is None or (req.authority.tenant is not None
                          and req.authority.tenant.id != tenant.id):
        raise AadError("invalid_grant", 70000)
    app = find_app(tenant, req.client_id)
    req.authenticate(tenant, app, credential_required=False)
    grant = store.redeem(token, app_id=peeked.app_id, now=req.sim.clock.now(),
                         inactivity=timedelta(
                             seconds=req.state.settings.refresh_token_inactivity_s))
    user = tenant.users.get(grant.user_id)
    if user is None or user.deleted:
        raise AadError("invalid_grant", 50034, grant.user_id)
    check_account(user)
    check_policies(user, interactive=True)
    scope = req.form.get("scope") or " ".join(grant.scopes)
    request = req.delegated(scope)
    # A refresh always returns a new refresh token (the chain began with offline_access).
    if not request.offline:
        request = DelegatedRequest(request.raw, request.permissions, request.default,
                                   (*request.oidc, "offline_access"))
    permissions = consented_permissions(app, request)
    return user_token(req.sim, UserGrant(tenant, app, user, permissions, request,
                                         req.wants_client_info))


def device_code(req: TokenRequest) -> dict[str, Any]:
    """Poll for a device-code sign-in (v2-oauth2-device-code.md, "Expected errors")."""
    refuse_consumers(req.authority, req.client_id)
    code = req.form.require("device_code")
    flow = req.state.device_codes.by_device_code(code)
    if flow is None or flow.app_id.lower() != req.client_id.lower() or not _same_authority(
            req, flow.tenant_segment):
        raise AadError("bad_verification_code", 70018)
    if req.authority.tenant is not None:
        home, app = req.authority.tenant, find_app(req.authority.tenant, req.client_id)
    else:
        home, app = find_app_anywhere(req.sim, req.client_id)
    req.authenticate(home, app, credential_required=False)
    now = req.sim.clock.now()
    if flow.expired(now):
        raise AadError("expired_token", 70019)
    if flow.state is FlowState.DECLINED:
        raise AadError("authorization_declined", 65004)
    if flow.state is FlowState.PENDING:
        too_soon = (flow.last_poll is not None
                    and (now - flow.last_poll).total_seconds() < flow.interval_s)
        flow.last_poll = now
        # RFC 8628 3.5 slow_down; Entra documents no number for it, so it reuses 70016.
        raise AadError("slow_down" if too_soon else "authorization_pending", 70016)
    assert flow.tenant_id is not None and flow.user_id is not None
    tenant = req.sim.directory.tenants[flow.tenant_id]
    app = find_app(tenant, req.client_id)
    user = tenant.users.get(flow.user_id)
    if user is None or user.deleted:
        raise AadError("invalid_grant", 50034, flow.user_id)
    check_account(user)
    check_policies(user, interactive=True)
    request = req.delegated(flow.scope)
    permissions = consented_permissions(app, request)
    req.state.device_codes.finish(flow)
    return user_token(req.sim, UserGrant(tenant, app, user, permissions, request,
                                         req.wants_client_info))


def _same_authority(req: TokenRequest, segment: str) -> bool:
    if req.authority.segment.lower() == segment.lower():
        return True
    tenant = req.sim.directory.find_tenant(segment)
    return tenant is not None and req.authority.tenant is tenant


GRANTS: dict[str, Callable[[TokenRequest], dict[str, Any]]] = {
    "client_credentials": client_credentials,
    "password": password,
    "refresh_token": refresh_token,
    DEVICE_CODE_GRANT: device_code,
}
