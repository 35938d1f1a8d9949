"""Public metadata MSAL and other clients read before asking for tokens (graph.md 1.1c, 1.4).

OIDC discovery, the signing keys, instance discovery and the user-realm look-up. The
documents follow the recorded shapes in fixtures/graph/ with our base URL in place of
login.microsoftonline.com.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from m365sim.entra.signing_cert import jwks
from m365sim.entra.tenants import resolve_authority
from m365sim.errors import AadError

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

_CACHE = {"Cache-Control": "max-age=86400, private", "Access-Control-Allow-Origin": "*"}


def openid_configuration(sim: Simulator, segment: str) -> dict[str, Any]:
    """The v2.0 discovery document for a tenant segment (90002 for an unknown tenant)."""
    authority = resolve_authority(sim, segment, error="invalid_tenant")
    base = sim.base_url
    # A tenant's document names it by id; the aliases keep their name in the endpoints
    # and put the literal `{tenantid}` placeholder in the issuer (graph.md 1.4).
    path = authority.tenant.id if authority.tenant else authority.segment.lower()
    issuer_tenant = authority.tenant.id if authority.tenant else "{tenantid}"
    return {
        "token_endpoint": f"{base}/{path}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                  "client_secret_basic"],
        "jwks_uri": f"{base}/{path}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base}/{issuer_tenant}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": f"{base}/{path}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/{path}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/{path}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                             "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat",
                             "auth_time", "acr", "nonce", "preferred_username", "name", "tid",
                             "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": f"{base}/{path}/kerberos",
        "tenant_region_scope": "WW" if authority.tenant else None,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


def instance_metadata(sim: Simulator, authorization_endpoint: str | None) -> dict[str, Any]:
    """Answer to `/common/discovery/instance`: where the tenant's discovery document is."""
    if not authorization_endpoint:
        raise AadError("invalid_request", 50050, "'authorization_endpoint' is required.")
    ours = urlsplit(sim.base_url)
    asked = urlsplit(authorization_endpoint)
    segments = [s for s in asked.path.split("/") if s]
    if asked.hostname != ours.hostname or not segments:
        # MSAL looks for error == invalid_instance (msal/authority.py).
        raise AadError("invalid_instance", 50049)
    host = ours.netloc
    return {
        "tenant_discovery_endpoint":
            f"{sim.base_url}/{segments[0]}/v2.0/.well-known/openid-configuration",
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    }


def user_realm(sim: Simulator, username: str) -> dict[str, Any]:
    """The user-realm answer: Managed for our domains, Unknown for any other."""
    _, _, domain = username.rpartition("@")
    tenant = sim.directory.find_tenant(domain) if domain else None
    base = {"ver": "1.0", "account_type": "Managed" if tenant else "Unknown",
            "domain_name": domain, "cloud_instance_name": "microsoftonline.com",
            "cloud_audience_urn": "urn:federation:MicrosoftOnline"}
    return base


def router(sim: Simulator) -> APIRouter:
    """The discovery routes."""
    routes = APIRouter()

    @routes.get("/{tenant}/v2.0/.well-known/openid-configuration")
    async def _openid(tenant: str) -> JSONResponse:
        return JSONResponse(openid_configuration(sim, tenant), headers=_CACHE)

    @routes.get("/{tenant}/discovery/v2.0/keys")
    async def _keys(tenant: str) -> JSONResponse:
        authority = resolve_authority(sim, tenant, error="invalid_tenant")
        issuer_tenant = authority.tenant.id if authority.tenant else "{tenantid}"
        return JSONResponse(jwks(sim, issuer_tenant), headers=_CACHE)

    @routes.get("/common/discovery/instance")
    async def _instance(request: Request) -> JSONResponse:
        endpoint = request.query_params.get("authorization_endpoint")
        return JSONResponse(instance_metadata(sim, endpoint), headers=_CACHE)

    @routes.get("/common/userrealm/{username}")
    async def _realm(username: str) -> JSONResponse:
        return JSONResponse(user_realm(sim, username),
                            headers={"Cache-Control": "no-store, no-cache"})

    return routes
