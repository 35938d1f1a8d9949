"""Client credentials with a secret: the daemon token m365pbx polls presence with."""

from __future__ import annotations

import base64
from datetime import timedelta
from urllib.parse import quote_plus

import httpx
import pytest
from starlette.requests import Request

from m365sim.auth import authenticate
from m365sim.clock import VirtualClock
from m365sim.errors import GraphError
from m365sim.model import Tenant
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID, APP_SECRET, TENANT_ID
from tests.sim.entra.conftest import (
    CONFIDENTIAL_APP,
    CONFIDENTIAL_SECRET,
    DESKTOP_APP,
    EXPIRED_APP,
    EXPIRED_SECRET,
    FAB_ID,
    GRAPH_DEFAULT,
    assert_aad_error,
    token,
)
from tests.sim.entra.test_discovery import fixture


async def test_secret_in_the_body_gets_an_app_token_with_the_granted_roles(
    client: httpx.AsyncClient, sim: Simulator,
) -> None:
    response = await token(client, TENANT_ID, grant_type="client_credentials",
                           client_id=APP_ID, client_secret=APP_SECRET, scope=GRAPH_DEFAULT)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store, no-cache"
    body = response.json()
    assert set(fixture("token-client-credentials.response.json")) <= set(body)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == body["ext_expires_in"] == 3599
    assert "refresh_token" not in body and "scope" not in body
    claims = sim.issuer.decode(body["access_token"])
    assert claims["tid"] == TENANT_ID and claims["appid"] == APP_ID
    assert "scp" not in claims
    assert sorted(claims["roles"]) == ["Calendars.Read", "Contacts.Read",
                                       "Presence.ReadWrite.All", "User.Read.All"]
    assert claims["exp"] - claims["iat"] == 3599


async def test_the_token_works_until_it_expires_on_the_simulators_clock(
    client: httpx.AsyncClient, sim: Simulator, clock: VirtualClock,
) -> None:
    body = (await token(client, TENANT_ID, grant_type="client_credentials", client_id=APP_ID,
                        client_secret=APP_SECRET, scope=GRAPH_DEFAULT)).json()
    request = Request({"type": "http", "headers": [
        (b"authorization", f"Bearer {body['access_token']}".encode())]})
    caller = authenticate(request, tenants=sim.directory.tenants, now=clock.now(),
                          decode=sim.issuer.decode)
    assert "User.Read.All" in caller.permissions
    await clock.advance(3600)
    with pytest.raises(GraphError, match="expired"):
        authenticate(request, tenants=sim.directory.tenants, now=clock.now(),
                     decode=sim.issuer.decode)


async def test_secret_with_http_basic_is_accepted(client: httpx.AsyncClient) -> None:
    # RFC 6749 2.3.1: id and secret are form-encoded before they are joined.
    pair = f"{quote_plus(APP_ID)}:{quote_plus(APP_SECRET)}".encode()
    response = await client.post(
        f"/{TENANT_ID}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "scope": GRAPH_DEFAULT},
        headers={"Authorization": "Basic " + base64.b64encode(pair).decode()})
    assert response.status_code == 200, response.text


async def test_tenant_may_be_named_by_domain(client: httpx.AsyncClient) -> None:
    response = await token(client, "contoso.onmicrosoft.com", grant_type="client_credentials",
                           client_id=APP_ID, client_secret=APP_SECRET, scope=GRAPH_DEFAULT)
    assert response.status_code == 200


async def test_wrong_secret_is_7000215_with_401(client: httpx.AsyncClient) -> None:
    response = await token(client, TENANT_ID, grant_type="client_credentials",
                           client_id=APP_ID, client_secret="the-secret-id-not-its-value",
                           scope=GRAPH_DEFAULT)
    body = assert_aad_error(response, "invalid_client", 7000215, status=401)
    assert APP_ID in body["error_description"]


async def test_expired_secret_is_7000222(client: httpx.AsyncClient, fabrikam: Tenant) -> None:
    response = await token(client, FAB_ID, grant_type="client_credentials",
                           client_id=EXPIRED_APP, client_secret=EXPIRED_SECRET,
                           scope=GRAPH_DEFAULT)
    assert_aad_error(response, "invalid_client", 7000222, status=401)


async def test_secret_expires_on_the_simulators_clock(
    client: httpx.AsyncClient, clock: VirtualClock, tenant: Tenant,
) -> None:
    tenant.apps[APP_ID].secrets[0].expires_at = clock.now() + timedelta(hours=1)
    form = {"grant_type": "client_credentials", "client_id": APP_ID,
            "client_secret": APP_SECRET, "scope": GRAPH_DEFAULT}
    assert (await token(client, TENANT_ID, **form)).status_code == 200
    await clock.advance(3600)
    assert_aad_error(await token(client, TENANT_ID, **form), "invalid_client", 7000222, 401)


async def test_a_secret_just_created_is_refused_for_a_minute(
    client: httpx.AsyncClient, clock: VirtualClock,
) -> None:
    created = await client.post(f"/_sim/tenants/{TENANT_ID}/apps/{APP_ID}/secrets",
                                json={"value": "brand~new~secret"})
    assert created.status_code == 201, created.text
    form = {"grant_type": "client_credentials", "client_id": APP_ID,
            "client_secret": "brand~new~secret", "scope": GRAPH_DEFAULT}
    assert_aad_error(await token(client, TENANT_ID, **form), "invalid_client", 7000215, 401)
    await clock.advance(61)
    assert (await token(client, TENANT_ID, **form)).status_code == 200


async def test_unknown_client_id_is_700016(client: httpx.AsyncClient) -> None:
    other = "99999999-9999-4999-8999-999999999999"
    response = await token(client, TENANT_ID, grant_type="client_credentials",
                           client_id=other, client_secret=APP_SECRET, scope=GRAPH_DEFAULT)
    body = assert_aad_error(response, "unauthorized_client", 700016)
    assert other in body["error_description"]


async def test_app_of_another_tenant_is_unknown_here(
    client: httpx.AsyncClient, fabrikam: Tenant,
) -> None:
    response = await token(client, TENANT_ID, grant_type="client_credentials",
                           client_id=CONFIDENTIAL_APP, client_secret=CONFIDENTIAL_SECRET,
                           scope=GRAPH_DEFAULT)
    assert_aad_error(response, "unauthorized_client", 700016)


async def test_no_credential_is_7000218(client: httpx.AsyncClient) -> None:
    response = await token(client, TENANT_ID, grant_type="client_credentials",
                           client_id=APP_ID, scope=GRAPH_DEFAULT)
    assert_aad_error(response, "invalid_client", 7000218)


async def test_public_client_sending_a_secret_is_700025(
    client: httpx.AsyncClient, fabrikam: Tenant,
) -> None:
    response = await token(client, FAB_ID, grant_type="client_credentials",
                           client_id=DESKTOP_APP, client_secret="anything",
                           scope=GRAPH_DEFAULT)
    assert_aad_error(response, "invalid_client", 700025)


@pytest.mark.parametrize(("scope", "code"), [
    ("https://graph.microsoft.com/User.Read.All", 1002012),
    ("User.Read.All", 1002012),
    ("https://foo.microsoft.com/.default", 70011),
    (f"{GRAPH_DEFAULT} openid", 70011),
])
async def test_client_credentials_take_only_the_graph_default_scope(
    client: httpx.AsyncClient, scope: str, code: int,
) -> None:
    response = await token(client, TENANT_ID, grant_type="client_credentials",
                           client_id=APP_ID, client_secret=APP_SECRET, scope=scope)
    body = assert_aad_error(response, "invalid_scope", code)
    assert scope.split()[0] in body["error_description"]


async def test_graph_default_by_app_id_is_the_same_resource(client: httpx.AsyncClient) -> None:
    response = await token(client, TENANT_ID, grant_type="client_credentials",
                           client_id=APP_ID, client_secret=APP_SECRET,
                           scope="00000003-0000-0000-c000-000000000000/.default")
    assert response.status_code == 200


async def test_missing_scope_is_900144(client: httpx.AsyncClient) -> None:
    response = await token(client, TENANT_ID, grant_type="client_credentials",
                           client_id=APP_ID, client_secret=APP_SECRET)
    body = assert_aad_error(response, "invalid_request", 900144)
    assert "'scope'" in body["error_description"]


async def test_aliases_name_no_tenant_for_an_app_token(client: httpx.AsyncClient) -> None:
    form = {"grant_type": "client_credentials", "client_id": APP_ID,
            "client_secret": APP_SECRET, "scope": GRAPH_DEFAULT}
    assert_aad_error(await token(client, "common", **form), "invalid_request", 50059)
    assert_aad_error(await token(client, "organizations", **form), "invalid_request", 50059)
    assert_aad_error(await token(client, "consumers", **form), "invalid_request", 9002332)


async def test_unknown_tenant_is_90002(client: httpx.AsyncClient) -> None:
    response = await token(client, "nowhere.example", grant_type="client_credentials",
                           client_id=APP_ID, client_secret=APP_SECRET, scope=GRAPH_DEFAULT)
    assert_aad_error(response, "invalid_request", 90002)


async def test_app_without_roles_gets_a_token_without_roles(
    client: httpx.AsyncClient, sim: Simulator, fabrikam: Tenant,
) -> None:
    fabrikam.apps[CONFIDENTIAL_APP].application_roles.clear()
    response = await token(client, FAB_ID, grant_type="client_credentials",
                           client_id=CONFIDENTIAL_APP, client_secret=CONFIDENTIAL_SECRET,
                           scope=GRAPH_DEFAULT)
    assert response.status_code == 200
    assert sim.issuer.decode(response.json()["access_token"])["roles"] == []


async def test_secret_added_with_an_expiry_expires_then(
    client: httpx.AsyncClient, clock: VirtualClock,
) -> None:
    created = await client.post(f"/_sim/tenants/contoso.com/apps/{APP_ID}/secrets",
                                json={"value": "short~lived", "expires": "2026-01-05T09:00:00"})
    assert created.status_code == 201
    assert created.json()["endDateTime"].startswith("2026-01-05T09:00:00")
    form = {"grant_type": "client_credentials", "client_id": APP_ID,
            "client_secret": "short~lived", "scope": GRAPH_DEFAULT}
    await clock.advance(120)
    assert (await token(client, TENANT_ID, **form)).status_code == 200
    await clock.advance(3600)
    assert_aad_error(await token(client, TENANT_ID, **form), "invalid_client", 7000222, 401)
    missing = await client.post(f"/_sim/tenants/contoso.com/apps/{APP_ID}/secrets", json={})
    assert missing.status_code == 400
    unknown = await client.post("/_sim/tenants/contoso.com/apps/nope/secrets",
                                json={"value": "x"})
    assert unknown.status_code == 404
