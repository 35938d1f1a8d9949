"""OIDC discovery, signing keys, instance discovery and the user-realm look-up."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography import x509

from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID, APP_SECRET, TENANT_ID
from tests.sim.entra.conftest import GRAPH_DEFAULT, assert_aad_error, token

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "graph"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


async def test_discovery_document_has_the_recorded_shape_with_our_urls(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(f"/{TENANT_ID}/v2.0/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "max-age=86400, private"
    document = response.json()
    recorded = fixture("openid-configuration.response.json")
    assert set(document) == set(recorded)
    for key, value in recorded.items():
        assert type(document[key]) is type(value), key
    base = f"https://sim.test/{TENANT_ID}"
    assert document["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert document["device_authorization_endpoint"] == f"{base}/oauth2/v2.0/devicecode"
    assert document["jwks_uri"] == f"{base}/discovery/v2.0/keys"
    assert document["issuer"] == f"{base}/v2.0"


async def test_discovery_by_domain_names_the_tenant_by_id(client: httpx.AsyncClient) -> None:
    document = (await client.get("/contoso.com/v2.0/.well-known/openid-configuration")).json()
    assert document["token_endpoint"] == f"https://sim.test/{TENANT_ID}/oauth2/v2.0/token"


async def test_discovery_for_aliases_keeps_the_tenantid_placeholder(
    client: httpx.AsyncClient,
) -> None:
    for alias in ("common", "organizations"):
        document = (await client.get(f"/{alias}/v2.0/.well-known/openid-configuration")).json()
        assert document["issuer"] == "https://sim.test/{tenantid}/v2.0"
        assert document["token_endpoint"] == f"https://sim.test/{alias}/oauth2/v2.0/token"


async def test_unknown_tenant_gets_aadsts90002_on_discovery(client: httpx.AsyncClient) -> None:
    response = await client.get("/fabrikam.example/v2.0/.well-known/openid-configuration")
    body = assert_aad_error(response, "invalid_tenant", 90002)
    assert "fabrikam.example" in body["error_description"]
    response = await client.get("/0a0a0a0a-0000-4000-8000-000000000000/discovery/v2.0/keys")
    assert_aad_error(response, "invalid_tenant", 90002)


async def test_issued_tokens_verify_with_the_published_keys(
    client: httpx.AsyncClient, sim: Simulator,
) -> None:
    keys = (await client.get(f"/{TENANT_ID}/discovery/v2.0/keys")).json()["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert {"kty", "use", "kid", "x5t", "n", "e", "x5c", "issuer"} <= set(key)
    response = await token(client, TENANT_ID, grant_type="client_credentials", client_id=APP_ID,
                           client_secret=APP_SECRET, scope=GRAPH_DEFAULT)
    access = response.json()["access_token"]
    assert jwt.get_unverified_header(access)["kid"] == key["kid"]
    # Through n/e, as PyJWT's JWK client does ...
    claims = jwt.decode(access, jwt.PyJWK(key).key, algorithms=["RS256"],
                        audience="https://graph.microsoft.com",
                        options={"verify_exp": False})
    assert claims["tid"] == TENANT_ID
    # ... and through the x5c certificate, as validators that read certificates do.
    cert = x509.load_der_x509_certificate(base64.b64decode(key["x5c"][0]))
    jwt.decode(access, cert.public_key(), algorithms=["RS256"],
               audience="https://graph.microsoft.com", options={"verify_exp": False})


async def test_instance_discovery_points_at_the_tenant_document(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/common/discovery/instance", params={
        "api-version": "1.1",
        "authorization_endpoint": f"https://sim.test/{TENANT_ID}/oauth2/v2.0/authorize"})
    assert response.status_code == 200
    body = response.json()
    assert body["tenant_discovery_endpoint"] == (
        f"https://sim.test/{TENANT_ID}/v2.0/.well-known/openid-configuration")
    assert body["metadata"][0]["preferred_network"] == "sim.test"


async def test_instance_discovery_refuses_a_foreign_host(client: httpx.AsyncClient) -> None:
    response = await client.get("/common/discovery/instance", params={
        "authorization_endpoint": "https://login.example.org/common/oauth2/v2.0/authorize"})
    # MSAL checks exactly this error value (msal/authority.py).
    assert_aad_error(response, "invalid_instance", 50049)
    response = await client.get("/common/discovery/instance")
    assert_aad_error(response, "invalid_request", 50050)


async def test_user_realm_is_managed_for_our_domains_only(client: httpx.AsyncClient) -> None:
    response = await client.get("/common/userrealm/anna@contoso.com",
                                params={"api-version": "1.0"})
    assert response.status_code == 200
    realm = response.json()
    recorded = fixture("userrealm-managed.response.json")
    assert set(realm) == set(recorded)
    assert realm == recorded  # same domain, same answer
    unknown = (await client.get("/common/userrealm/x@elsewhere.example")).json()
    assert unknown["account_type"] == "Unknown"
