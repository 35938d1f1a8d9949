"""The password grant (ROPC) a service account signs in with, and its failures."""

from __future__ import annotations

import base64
import json

import httpx
import jwt
import pytest

from m365sim.model import Tenant
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID, PASSWORD, TENANT_ID
from tests.sim.entra.conftest import (
    CONFIDENTIAL_APP,
    CONFIDENTIAL_SECRET,
    DESKTOP_APP,
    FAB_ID,
    assert_aad_error,
    token,
)
from tests.sim.entra.test_discovery import fixture

SCOPE = "https://graph.microsoft.com/Presence.Read.All offline_access openid profile"


async def ropc(client: httpx.AsyncClient, username: str, password: str = PASSWORD, *,
               tenant: str = TENANT_ID, client_id: str = APP_ID, scope: str = SCOPE,
               **extra: str) -> httpx.Response:
    return await token(client, tenant, grant_type="password", client_id=client_id,
                       username=username, password=password, scope=scope, **extra)


async def test_password_grant_answers_like_the_documented_example(
    client: httpx.AsyncClient, sim: Simulator, tenant: Tenant,
) -> None:
    response = await ropc(client, "anna@contoso.com", client_info="1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(fixture("token-ropc.response.json")) <= set(body)
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    claims = sim.issuer.decode(body["access_token"])
    assert (claims["tid"], claims["oid"], claims["appid"]) == (TENANT_ID, anna.id, APP_ID)
    assert "Presence.Read.All" in claims["scp"].split()
    assert "roles" not in claims
    # The answer lists the granted scopes; offline_access gives a refresh token instead.
    assert "Presence.Read.All" in body["scope"].split()
    assert "offline_access" not in body["scope"].split()
    assert body["refresh_token"]
    info = json.loads(base64.urlsafe_b64decode(body["client_info"] + "=="))
    assert info == {"uid": anna.id, "utid": TENANT_ID}


async def test_id_token_carries_what_msal_reads(
    client: httpx.AsyncClient, sim: Simulator, tenant: Tenant,
) -> None:
    body = (await ropc(client, "ANNA@contoso.com")).json()
    claims = jwt.decode(body["id_token"], sim.issuer.key.public_pem(), algorithms=["RS256"],
                        audience=APP_ID, options={"verify_exp": False})
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    assert claims["oid"] == anna.id and claims["tid"] == TENANT_ID
    assert claims["preferred_username"] == "anna@contoso.com"
    assert claims["iss"] == f"https://sim.test/{TENANT_ID}/v2.0"
    assert claims["ver"] == "2.0"


async def test_no_refresh_or_id_token_unless_asked(client: httpx.AsyncClient) -> None:
    body = (await ropc(client, "anna@contoso.com", scope="Presence.Read.All")).json()
    assert "refresh_token" not in body and "id_token" not in body
    assert "client_info" not in body


@pytest.mark.parametrize("password", [
    "p@ss w0rd!§\"'\\",
    "  inner  spaces and\ttab",
    "&=+%25?#;/:",
    "Ünïcödé-パスワード-🔑",
    "quote\"double'single`back",
    "back\\slash\\\\double",
    "percent%20not%decoded%",
    "x" * 256,
])
async def test_passwords_are_opaque(client: httpx.AsyncClient, tenant: Tenant,
                                    password: str) -> None:
    user = tenant.find_user("ben@contoso.com")
    assert user is not None
    user.password = password
    assert (await ropc(client, "ben@contoso.com", password)).status_code == 200
    wrong = password[:-1] + ("y" if password[-1] != "y" else "z")
    assert_aad_error(await ropc(client, "ben@contoso.com", wrong), "invalid_grant", 50126)


async def test_wrong_password_is_50126(client: httpx.AsyncClient) -> None:
    body = assert_aad_error(await ropc(client, "anna@contoso.com", "nope"),
                            "invalid_grant", 50126)
    assert body["error_uri"] == "https://login.microsoftonline.com/error?code=50126"
    assert set(fixture("token-error-bad-password.json")) == set(body)


async def test_unknown_user_is_50034(client: httpx.AsyncClient) -> None:
    assert_aad_error(await ropc(client, "nobody@contoso.com"), "invalid_grant", 50034)


async def test_disabled_user_is_50057(client: httpx.AsyncClient) -> None:
    assert_aad_error(await ropc(client, "off@contoso.com"), "invalid_grant", 50057)


async def test_disabled_user_with_a_wrong_password_learns_nothing(
    client: httpx.AsyncClient,
) -> None:
    assert_aad_error(await ropc(client, "off@contoso.com", "guess"), "invalid_grant", 50126)


async def test_locked_user_is_50053_even_with_the_right_password(
    client: httpx.AsyncClient, fabrikam: Tenant,
) -> None:
    response = await ropc(client, "locked@fabrikam.com", tenant=FAB_ID, client_id=DESKTOP_APP,
                          scope="User.Read")
    assert_aad_error(response, "invalid_grant", 50053)


async def test_conditional_access_block_is_53003(
    client: httpx.AsyncClient, fabrikam: Tenant,
) -> None:
    response = await ropc(client, "blocked@fabrikam.com", tenant=FAB_ID, client_id=DESKTOP_APP,
                          scope="User.Read")
    assert_aad_error(response, "invalid_grant", 53003)


async def test_mfa_user_is_50076_with_basic_action(client: httpx.AsyncClient) -> None:
    body = assert_aad_error(await ropc(client, "mfa@contoso.com"), "invalid_grant", 50076)
    assert body["suberror"] == "basic_action"
    assert set(fixture("token-error-mfa.json")) == set(body)
    assert "00000003-0000-0000-c000-000000000000" in body["error_description"]


async def test_mfa_enrollment_is_50079(client: httpx.AsyncClient, fabrikam: Tenant) -> None:
    response = await ropc(client, "enroll@fabrikam.com", tenant=FAB_ID, client_id=DESKTOP_APP,
                          scope="User.Read")
    assert_aad_error(response, "invalid_grant", 50079)


async def test_scope_without_consent_is_65001(client: httpx.AsyncClient) -> None:
    response = await ropc(client, "anna@contoso.com", scope="Mail.Read offline_access")
    body = assert_aad_error(response, "invalid_grant", 65001)
    assert body["suberror"] == "consent_required"
    assert APP_ID in body["error_description"]


async def test_unknown_scope_is_70011(client: httpx.AsyncClient) -> None:
    for scope in ("Presence.Read.Everything", "https://outlook.office.com/Mail.Read"):
        response = await ropc(client, "anna@contoso.com", scope=scope)
        assert_aad_error(response, "invalid_scope", 70011)


async def test_scope_names_are_case_insensitive(client: httpx.AsyncClient) -> None:
    response = await ropc(client, "anna@contoso.com", scope="presence.read.all openid")
    assert response.status_code == 200
    assert "Presence.Read.All" in response.json()["scope"].split()


async def test_confidential_app_without_secret_is_7000218(
    client: httpx.AsyncClient, fabrikam: Tenant,
) -> None:
    response = await ropc(client, "svc@fabrikam.com", tenant=FAB_ID,
                          client_id=CONFIDENTIAL_APP, scope="User.Read")
    body = assert_aad_error(response, "invalid_client", 7000218)
    assert set(fixture("token-error-public-client-flows.json")) == set(body)
    with_secret = await ropc(client, "svc@fabrikam.com", tenant=FAB_ID,
                             client_id=CONFIDENTIAL_APP, scope="User.Read",
                             client_secret=CONFIDENTIAL_SECRET)
    assert with_secret.status_code == 200


async def test_public_client_sending_a_secret_is_700025(
    client: httpx.AsyncClient, fabrikam: Tenant,
) -> None:
    response = await ropc(client, "svc@fabrikam.com", tenant=FAB_ID, client_id=DESKTOP_APP,
                          scope="User.Read", client_secret="s")
    assert_aad_error(response, "invalid_client", 700025)


async def test_password_grant_on_common_is_9001023(client: httpx.AsyncClient) -> None:
    response = await ropc(client, "anna@contoso.com", tenant="common")
    assert_aad_error(response, "invalid_request", 9001023)


async def test_organizations_finds_the_tenant_from_the_user_name(
    client: httpx.AsyncClient, sim: Simulator,
) -> None:
    response = await ropc(client, "anna@contoso.com", tenant="organizations")
    assert response.status_code == 200
    assert sim.issuer.decode(response.json()["access_token"])["tid"] == TENANT_ID
    unknown = await ropc(client, "x@unknown.example", tenant="organizations")
    assert_aad_error(unknown, "invalid_grant", 50034)


async def test_user_of_another_tenant_is_unknown_here(
    client: httpx.AsyncClient, fabrikam: Tenant,
) -> None:
    response = await ropc(client, "svc@fabrikam.com")
    assert_aad_error(response, "invalid_grant", 50034)


async def test_missing_password_is_900144(client: httpx.AsyncClient) -> None:
    response = await token(client, TENANT_ID, grant_type="password", client_id=APP_ID,
                           username="anna@contoso.com", scope=SCOPE)
    body = assert_aad_error(response, "invalid_request", 900144)
    assert "'password'" in body["error_description"]


async def test_claims_with_client_capabilities_are_accepted(client: httpx.AsyncClient) -> None:
    claims = json.dumps({"access_token": {"xms_cc": {"values": ["CP1"]}}})
    response = await ropc(client, "anna@contoso.com", claims=claims)
    assert response.status_code == 200
    bad = await ropc(client, "anna@contoso.com", claims="{not json")
    assert_aad_error(bad, "invalid_request", 90100)
