"""The real MSAL PublicClientApplication: username/password, device flow and refresh."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import httpx
import msal
import pytest
from starlette.requests import Request

from m365sim.auth import authenticate
from m365sim.clock import VirtualClock
from m365sim.entra import entra_of
from m365sim.errors import GraphError
from m365sim.model import Tenant
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID, PASSWORD, TENANT_ID
from tests.sim.entra.conftest import CONFIDENTIAL_APP, DESKTOP_APP, FAB_ID
from tests.sim.entra.msal_support import SimulatorSession, assert_msal_error, authority

SCOPES = ["Presence.Read.All"]
# MSAL warns that username/password is deprecated; it is what these tests are about.
pytestmark = pytest.mark.filterwarnings("ignore:This API has been deprecated:DeprecationWarning")


async def public(server: RunningServer, http: SimulatorSession, tenant: str = TENANT_ID,
                 client_id: str = APP_ID) -> msal.PublicClientApplication:
    """MSAL's public client, built in a thread (its constructor fetches discovery)."""
    return await asyncio.to_thread(
        msal.PublicClientApplication, client_id, authority=authority(server, tenant),
        instance_discovery=False, http_client=http)


async def ropc(app: msal.PublicClientApplication, username: str, password: str = PASSWORD,
               scopes: list[str] = SCOPES) -> dict[str, Any]:
    result: dict[str, Any] = await asyncio.to_thread(
        app.acquire_token_by_username_password, username, password, scopes)
    return result


def bearer_caller(sim: Simulator, access_token: str) -> object:
    request = Request({"type": "http", "headers": [
        (b"authorization", f"Bearer {access_token}".encode())]})
    return authenticate(request, tenants=sim.directory.tenants, now=sim.clock.now(),
                        decode=sim.issuer.decode)


async def test_username_password_puts_the_account_in_msals_cache(
    sim_server: RunningServer, msal_http: SimulatorSession, sim: Simulator, tenant: Tenant,
) -> None:
    app = await public(sim_server, msal_http, "contoso.com")
    result = await ropc(app, "svc-presence@contoso.com")
    assert "access_token" in result, result
    user = tenant.find_user("svc-presence@contoso.com")
    assert user is not None
    (account,) = await asyncio.to_thread(app.get_accounts)
    assert account["home_account_id"] == f"{user.id}.{TENANT_ID}"
    assert account["username"] == "svc-presence@contoso.com"
    assert result["id_token_claims"]["oid"] == user.id
    # MSAL asked for the user realm without a port; the session took it to ours.
    assert any("/common/userrealm/svc-presence@contoso.com" in url for url in msal_http.seen)


@pytest.mark.parametrize(("username", "password", "scopes", "error", "code"), [
    ("anna@contoso.com", "wrong password", SCOPES, "invalid_grant", 50126),
    ("mfa@contoso.com", PASSWORD, SCOPES, "invalid_grant", 50076),
    ("nobody@contoso.com", PASSWORD, SCOPES, "invalid_grant", 50034),
    ("off@contoso.com", PASSWORD, SCOPES, "invalid_grant", 50057),
    ("anna@contoso.com", PASSWORD, ["Mail.Read"], "invalid_grant", 65001),
    ("anna@contoso.com", PASSWORD, ["Presence.Read.Everything"], "invalid_scope", 70011),
])
async def test_contoso_sign_in_failures(
    sim_server: RunningServer, msal_http: SimulatorSession,
    username: str, password: str, scopes: list[str], error: str, code: int,
) -> None:
    app = await public(sim_server, msal_http)
    assert_msal_error(await ropc(app, username, password, scopes), error, code)


@pytest.mark.parametrize(("username", "code"), [
    ("locked@fabrikam.com", 50053),
    ("blocked@fabrikam.com", 53003),
    ("enroll@fabrikam.com", 50079),
])
async def test_fabrikam_sign_in_failures(
    sim_server: RunningServer, msal_http: SimulatorSession, fabrikam: Tenant,
    username: str, code: int,
) -> None:
    app = await public(sim_server, msal_http, FAB_ID, DESKTOP_APP)
    assert_msal_error(await ropc(app, username, scopes=["User.Read"]), "invalid_grant", code)


async def test_app_without_public_client_flows_is_7000218(
    sim_server: RunningServer, msal_http: SimulatorSession, fabrikam: Tenant,
) -> None:
    app = await public(sim_server, msal_http, FAB_ID, CONFIDENTIAL_APP)
    result = await ropc(app, "svc@fabrikam.com", scopes=["User.Read"])
    assert_msal_error(result, "invalid_client", 7000218)


async def test_password_grant_on_common_is_9001023(
    sim_server: RunningServer, msal_http: SimulatorSession,
) -> None:
    app = await public(sim_server, msal_http, "common")
    assert_msal_error(await ropc(app, "anna@contoso.com"), "invalid_request", 9001023)


async def test_refresh_after_the_access_token_expired_on_the_simulators_clock(
    sim_server: RunningServer, msal_http: SimulatorSession, sim: Simulator,
    clock: VirtualClock,
) -> None:
    app = await public(sim_server, msal_http)
    first = await ropc(app, "svc-presence@contoso.com")
    await clock.advance(3600)
    # MSAL's cache runs on the wall clock and still trusts the token; Graph does not.
    with pytest.raises(GraphError):
        bearer_caller(sim, first["access_token"])
    (account,) = await asyncio.to_thread(app.get_accounts)
    renewed = await asyncio.to_thread(app.acquire_token_silent_with_error, SCOPES, account,
                                      force_refresh=True)
    assert renewed is not None and "access_token" in renewed, renewed
    assert renewed["token_source"] == "identity_provider"
    bearer_caller(sim, renewed["access_token"])


async def test_refresh_token_inactive_for_90_days_is_700082(
    sim_server: RunningServer, msal_http: SimulatorSession, clock: VirtualClock,
) -> None:
    app = await public(sim_server, msal_http)
    await ropc(app, "svc-presence@contoso.com")
    await clock.advance(91 * 86_400)
    (account,) = await asyncio.to_thread(app.get_accounts)
    result = await asyncio.to_thread(app.acquire_token_silent_with_error, SCOPES, account,
                                     force_refresh=True)
    assert result is not None
    assert_msal_error(result, "invalid_grant", 700082)


async def test_revoked_sessions_are_50173(
    sim_server: RunningServer, msal_http: SimulatorSession, sim: Simulator, tenant: Tenant,
) -> None:
    app = await public(sim_server, msal_http)
    await ropc(app, "svc-presence@contoso.com")
    user = tenant.find_user("svc-presence@contoso.com")
    assert user is not None
    entra_of(sim).refresh_tokens.revoke_user(TENANT_ID, user.id)
    (account,) = await asyncio.to_thread(app.get_accounts)
    result = await asyncio.to_thread(app.acquire_token_silent_with_error, SCOPES, account,
                                     force_refresh=True)
    assert result is not None
    assert_msal_error(result, "invalid_grant", 50173)


async def _control(server: RunningServer, path: str, body: dict[str, str]) -> httpx.Response:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    async with httpx.AsyncClient(base_url=server.url, verify=context) as http:
        return await http.post(path, json=body)


async def _first_poll(sim: Simulator, user_code: str) -> None:
    flow = entra_of(sim).device_codes.by_user_code(user_code)
    assert flow is not None
    for _ in range(500):
        if flow.last_poll is not None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("MSAL never polled")


async def _device_flow(sim: Simulator, app: msal.PublicClientApplication
                       ) -> tuple[dict[str, Any], asyncio.Future[dict[str, Any]]]:
    # MSAL waits `interval` wall-clock seconds between polls: keep it short in tests.
    entra_of(sim).settings.device_code_interval_s = 1
    flow: dict[str, Any] = await asyncio.to_thread(app.initiate_device_flow, SCOPES)
    assert "user_code" in flow, flow
    polling = asyncio.ensure_future(asyncio.to_thread(app.acquire_token_by_device_flow, flow))
    await _first_poll(sim, flow["user_code"])
    return flow, polling


async def test_device_flow_approved_through_the_control_api(
    sim_server: RunningServer, msal_http: SimulatorSession, sim: Simulator, tenant: Tenant,
) -> None:
    app = await public(sim_server, msal_http)
    flow, polling = await _device_flow(sim, app)
    # The MFA service account: device code is how it signs in (ROPC cannot do MFA).
    approved = await _control(sim_server, "/_sim/devicecode/approve",
                              {"user_code": flow["user_code"], "upn": "mfa@contoso.com"})
    assert approved.status_code == 200, approved.text
    result = await asyncio.wait_for(polling, timeout=20)
    assert "access_token" in result, result
    user = tenant.find_user("mfa@contoso.com")
    assert user is not None
    assert result["id_token_claims"]["oid"] == user.id


async def test_device_flow_declined(sim_server: RunningServer, msal_http: SimulatorSession,
                                    sim: Simulator) -> None:
    app = await public(sim_server, msal_http)
    flow, polling = await _device_flow(sim, app)
    await _control(sim_server, "/_sim/devicecode/deny", {"user_code": flow["user_code"]})
    result = await asyncio.wait_for(polling, timeout=20)
    assert_msal_error(result, "authorization_declined", 65004)


async def test_device_flow_expires_on_the_simulators_clock(
    sim_server: RunningServer, msal_http: SimulatorSession, sim: Simulator,
    clock: VirtualClock,
) -> None:
    app = await public(sim_server, msal_http)
    _, polling = await _device_flow(sim, app)
    await clock.advance(900)
    result = await asyncio.wait_for(polling, timeout=20)
    assert_msal_error(result, "expired_token", 70019)
