"""Device-code sign-in: the path for service accounts that must do MFA."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from m365sim.clock import VirtualClock
from m365sim.model import Tenant
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID, TENANT_ID
from tests.sim.entra.conftest import CONFIDENTIAL_APP, FAB_ID, assert_aad_error, token
from tests.sim.entra.test_discovery import fixture

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SCOPE = "Presence.Read.All offline_access openid profile"


async def start(client: httpx.AsyncClient, tenant: str = TENANT_ID, client_id: str = APP_ID,
                scope: str = SCOPE) -> dict[str, Any]:
    response = await client.post(f"/{tenant}/oauth2/v2.0/devicecode",
                                 data={"client_id": client_id, "scope": scope})
    assert response.status_code == 200, response.text
    flow: dict[str, Any] = response.json()
    return flow


async def poll(client: httpx.AsyncClient, flow: dict[str, Any], tenant: str = TENANT_ID,
               client_id: str = APP_ID) -> httpx.Response:
    return await token(client, tenant, grant_type=DEVICE_GRANT, client_id=client_id,
                       device_code=flow["device_code"], client_info="1")


async def approve(client: httpx.AsyncClient, flow: dict[str, Any], upn: str
                  ) -> httpx.Response:
    return await client.post("/_sim/devicecode/approve",
                             json={"user_code": flow["user_code"], "upn": upn})


async def test_device_code_answer_has_the_documented_fields(client: httpx.AsyncClient) -> None:
    flow = await start(client)
    assert set(flow) == set(fixture("devicecode.response.json"))
    assert flow["expires_in"] == 900 and flow["interval"] == 5
    assert flow["verification_uri"] == "https://microsoft.com/devicelogin"
    assert flow["user_code"] in flow["message"]
    assert "verification_uri_complete" not in flow


async def test_pending_until_approved_then_a_token_for_the_approving_user(
    client: httpx.AsyncClient, sim: Simulator, clock: VirtualClock, tenant: Tenant,
) -> None:
    flow = await start(client)
    pending = assert_aad_error(await poll(client, flow), "authorization_pending", 70016)
    assert set(pending) == set(fixture("token-error-device-pending.json")) | {"error_uri"}
    approved = await approve(client, flow, "svc-presence@contoso.com")
    assert approved.status_code == 200, approved.text
    await clock.advance(5)
    response = await poll(client, flow)
    assert response.status_code == 200, response.text
    body = response.json()
    user = tenant.find_user("svc-presence@contoso.com")
    assert user is not None
    assert sim.issuer.decode(body["access_token"])["oid"] == user.id
    assert {"refresh_token", "id_token", "client_info"} <= set(body)
    # A device code is redeemed once.
    assert_aad_error(await poll(client, flow), "bad_verification_code", 70018)


async def test_mfa_user_signs_in_with_a_device_code(
    client: httpx.AsyncClient, clock: VirtualClock,
) -> None:
    flow = await start(client)
    assert (await approve(client, flow, "mfa@contoso.com")).status_code == 200
    assert (await poll(client, flow)).status_code == 200


async def test_polling_faster_than_the_interval_is_slow_down(
    client: httpx.AsyncClient, clock: VirtualClock,
) -> None:
    flow = await start(client)
    assert_aad_error(await poll(client, flow), "authorization_pending", 70016)
    await clock.advance(2)
    assert_aad_error(await poll(client, flow), "slow_down", 70016)
    await clock.advance(5)
    assert_aad_error(await poll(client, flow), "authorization_pending", 70016)


async def test_declined_sign_in_is_authorization_declined(client: httpx.AsyncClient) -> None:
    flow = await start(client)
    declined = await client.post("/_sim/devicecode/deny", json={"user_code": flow["user_code"]})
    assert declined.status_code == 200
    assert_aad_error(await poll(client, flow), "authorization_declined", 65004)


async def test_code_expires_after_expires_in_on_the_simulators_clock(
    client: httpx.AsyncClient, clock: VirtualClock,
) -> None:
    flow = await start(client)
    await clock.advance(900)
    assert_aad_error(await poll(client, flow), "expired_token", 70019)
    late = await approve(client, flow, "anna@contoso.com")
    assert late.status_code == 400
    assert "AADSTS70019" in late.json()["error"]["message"]


@pytest.mark.parametrize(("upn", "code"), [
    ("off@contoso.com", 50057),
    ("nobody@contoso.com", 50034),
])
async def test_approval_fails_as_the_browser_sign_in_would(
    client: httpx.AsyncClient, upn: str, code: int,
) -> None:
    flow = await start(client)
    refused = await approve(client, flow, upn)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"].startswith(f"AADSTS{code}:")
    assert_aad_error(await poll(client, flow), "authorization_pending", 70016)


async def test_conditional_access_blocks_the_device_sign_in_too(
    client: httpx.AsyncClient, fabrikam: Tenant,
) -> None:
    flow = await start(client, FAB_ID, CONFIDENTIAL_APP, "User.Read")
    refused = await approve(client, flow, "blocked@fabrikam.com")
    assert refused.json()["error"]["message"].startswith("AADSTS53003:")


async def test_approval_for_scopes_without_consent_is_65001(client: httpx.AsyncClient) -> None:
    flow = await start(client, scope="Mail.Read")
    refused = await approve(client, flow, "anna@contoso.com")
    assert refused.json()["error"]["message"].startswith("AADSTS65001:")


async def test_common_takes_the_tenant_of_the_approving_user(
    client: httpx.AsyncClient, sim: Simulator,
) -> None:
    flow = await start(client, "common")
    assert (await approve(client, flow, "anna@contoso.com")).status_code == 200
    response = await poll(client, flow, tenant="common")
    assert sim.issuer.decode(response.json()["access_token"])["tid"] == TENANT_ID


async def test_confidential_app_cannot_redeem_without_its_secret(
    client: httpx.AsyncClient, fabrikam: Tenant,
) -> None:
    flow = await start(client, FAB_ID, CONFIDENTIAL_APP, "User.Read")
    assert (await approve(client, flow, "svc@fabrikam.com")).status_code == 200
    assert_aad_error(await poll(client, flow, FAB_ID, CONFIDENTIAL_APP), "invalid_client",
                     7000218)


async def test_unknown_device_code_and_other_client_are_bad_verification_code(
    client: httpx.AsyncClient, fabrikam: Tenant,
) -> None:
    assert_aad_error(await poll(client, {"device_code": "nope"}), "bad_verification_code",
                     70018)
    flow = await start(client)
    other = await poll(client, flow, client_id="99999999-9999-4999-8999-999999999999")
    assert_aad_error(other, "bad_verification_code", 70018)


async def test_device_code_request_errors(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/{TENANT_ID}/oauth2/v2.0/devicecode",
                                 data={"client_id": APP_ID})
    assert_aad_error(response, "invalid_request", 900144)
    response = await client.post(f"/{TENANT_ID}/oauth2/v2.0/devicecode",
                                 data={"client_id": "99999999-9999-4999-8999-999999999999",
                                       "scope": SCOPE})
    assert_aad_error(response, "unauthorized_client", 700016)
    response = await client.post(f"/{TENANT_ID}/oauth2/v2.0/devicecode",
                                 data={"client_id": APP_ID, "scope": "Nope.Nothing"})
    assert_aad_error(response, "invalid_scope", 70011)


async def test_unknown_user_code_and_double_approval_in_the_control_api(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.post("/_sim/devicecode/approve",
                                json={"user_code": "NOPE", "upn": "anna@contoso.com"})
    assert missing.status_code == 404
    flow = await start(client)
    assert (await approve(client, flow, "anna@contoso.com")).status_code == 200
    assert (await approve(client, flow, "anna@contoso.com")).status_code == 409
    bad = await client.post("/_sim/devicecode/approve", content=b"{oops",
                            headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BadRequest"
    incomplete = await client.post("/_sim/devicecode/approve", json={"user_code": "X"})
    assert incomplete.status_code == 400
