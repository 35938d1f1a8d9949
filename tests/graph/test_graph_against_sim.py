"""The Graph client as m365pbx uses it, against the simulator over TLS with the real MSAL."""

from __future__ import annotations

import asyncio
import ssl
from datetime import timedelta

import httpx
import pytest

from m365pbx.core.matching import has_teams_plan
from m365pbx.graph.auth import (
    AppTokenSource,
    Authority,
    ClientCredential,
    DeviceCodeSignIn,
    ServiceAccountTokenSource,
)
from m365pbx.graph.client import GraphClient, RetryPolicy
from m365pbx.graph.errors import BadCredentials, Forbidden, MfaRequired, NotFound
from m365pbx.graph.presence import (
    clear_presence,
    get_presences,
    set_presence,
)
from m365pbx.graph.users import list_users
from m365sim.clock import VirtualClock
from m365sim.faults import FaultRule
from m365sim.model import Tenant
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID, APP_SECRET, PASSWORD


async def test_application_token_reads_the_directory(app_client: GraphClient) -> None:
    users = await list_users(app_client)
    upns = {u["userPrincipalName"] for u in users}
    assert {"anna@contoso.com", "ben@contoso.com"} <= upns
    anna = next(u for u in users if u["userPrincipalName"] == "anna@contoso.com")
    assert anna["assignedPlans"][0]["service"] == "TeamspaceAPI"  # asked for with $select


async def test_only_the_properties_asked_for_are_kept(app_client: GraphClient) -> None:
    users = await list_users(app_client, keep={"id", "userPrincipalName", "assignedPlans"})
    anna = next(u for u in users if u["userPrincipalName"] == "anna@contoso.com")
    assert set(anna) == {"id", "userPrincipalName", "assignedPlans"}
    # Of each Teams plan, what the licence check reads.
    assert anna["assignedPlans"] == [{"service": "TeamspaceAPI", "capabilityStatus": "Enabled"}]
    assert has_teams_plan(anna["assignedPlans"])


async def test_an_expired_token_is_replaced_once_without_failing(
    app_client: GraphClient, clock: VirtualClock
) -> None:
    await list_users(app_client)
    sent = app_client.requests_sent
    # MSAL still holds the token on the wall clock; on the simulator's clock it expired.
    await clock.advance(2 * 3600)
    await list_users(app_client)
    assert app_client.requests_sent == sent + 2  # the refused request, then the retry


async def test_throttling_is_waited_out_as_graph_asks(
    app_client: GraphClient, sim: Simulator, tenant: Tenant, clock: VirtualClock
) -> None:
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    sim.faults.add_fault(FaultRule(status=429, path_prefix="/v1.0/communications", count=2,
                                   retry_after_s=7))
    started = clock.now()
    task = asyncio.create_task(get_presences(app_client, [anna.id]))
    while not task.done():
        await clock.advance(1)
        await asyncio.sleep(0.01)
    readings = task.result()
    assert [r.user_id for r in readings] == [anna.id]
    waited = (clock.now() - started).total_seconds()
    assert waited >= 14  # two Retry-After waits of 7 s on the injected clock


async def test_more_than_650_people_take_several_requests(
    app_client: GraphClient, sim: Simulator, tenant: Tenant
) -> None:
    from m365sim.directory.generate import generate_users

    generate_users(sim, tenant, users=700, seed=3)
    ids = [u.id for u in tenant.users.values()]
    sent = app_client.requests_sent
    readings = await get_presences(app_client, ids)
    assert len({r.user_id for r in readings}) >= 700
    assert app_client.requests_sent - sent == 2


async def test_clock_skew_is_seen_in_the_date_header(
    app_client: GraphClient, sim: Simulator
) -> None:
    sim.settings.date_skew_s = -900
    await list_users(app_client)
    assert app_client.clock_skew is not None and -905 < app_client.clock_skew < -895


async def test_a_wrong_secret_explains_the_fix(
    authority: Authority, http: httpx.AsyncClient, sim_server: RunningServer
) -> None:
    tokens = AppTokenSource(authority, ClientCredential(APP_ID, secret="the-secret-id-not-value"))
    client = GraphClient(tokens, http, base_url=sim_server.url)
    with pytest.raises(BadCredentials) as caught:
        await list_users(client)
    assert caught.value.aadsts == 7000215
    assert "Secret ID" in caught.value.hint
    assert "the-secret-id-not-value" not in caught.value.describe()


async def test_session_write_and_clear_for_a_person(
    app_client: GraphClient, sim: Simulator, tenant: Tenant
) -> None:
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    await set_presence(app_client, anna.id, session_id=APP_ID, availability="Busy",
                       activity="InACall", expiration=timedelta(minutes=15))
    shown = await get_presences(app_client, [anna.id])
    assert (shown[0].availability, shown[0].activity) == ("Busy", "InACall")
    await clear_presence(app_client, anna.id, session_id=APP_ID)
    shown = await get_presences(app_client, [anna.id])
    assert (shown[0].availability, shown[0].activity) == ("Available", "Available")
    with pytest.raises(NotFound):
        await clear_presence(app_client, anna.id, session_id=APP_ID)


async def test_password_sign_in_of_a_service_account(
    authority: Authority, http: httpx.AsyncClient, sim_server: RunningServer,
    clock: VirtualClock,
) -> None:
    tokens = ServiceAccountTokenSource(authority, ClientCredential(APP_ID),
                                       "svc-presence@contoso.com", password=PASSWORD)
    client = GraphClient(tokens, http, base_url=sim_server.url, clock=clock)
    me = await client.get_json("/v1.0/me")
    assert me["userPrincipalName"] == "svc-presence@contoso.com"


async def test_mfa_account_fails_with_password_and_works_with_device_code(
    authority: Authority, http: httpx.AsyncClient, sim_server: RunningServer,
    sim: Simulator, clock: VirtualClock,
) -> None:
    password_tokens = ServiceAccountTokenSource(authority, ClientCredential(APP_ID),
                                                "mfa@contoso.com", password=PASSWORD)
    with pytest.raises(MfaRequired) as caught:
        await password_tokens.token()
    assert "device" in caught.value.hint

    sign_in = DeviceCodeSignIn(authority, ClientCredential(APP_ID))
    prompt = await sign_in.start()
    assert prompt.user_code and prompt.verification_uri
    finishing = asyncio.create_task(sign_in.finish(prompt))
    await asyncio.sleep(0.2)
    async with httpx.AsyncClient(
        verify=ssl.create_default_context(cafile=sim_server.ca_file)
    ) as control:
        answer = await control.post(f"{sim_server.url}/_sim/devicecode/approve",
                                    json={"user_code": prompt.user_code,
                                          "upn": "mfa@contoso.com"})
        assert answer.status_code == 200, answer.text
    # MSAL polls every `interval` seconds of wall time; let the simulator's clock follow.
    while not finishing.done():
        await clock.advance(1)
        await asyncio.sleep(0.05)
    result = finishing.result()
    assert result.upn == "mfa@contoso.com"

    stored: list[str] = []
    tokens = ServiceAccountTokenSource(authority, ClientCredential(APP_ID), "mfa@contoso.com",
                                       refresh_token=result.refresh_token,
                                       on_refresh_token=stored.append)
    client = GraphClient(tokens, http, base_url=sim_server.url, clock=clock)
    me = await client.get_json("/v1.0/me")
    assert me["userPrincipalName"] == "mfa@contoso.com"
    assert stored and stored[-1] != result.refresh_token  # the new one, to be kept


async def test_missing_permission_is_forbidden_with_a_fix(
    authority: Authority, http: httpx.AsyncClient, sim_server: RunningServer, tenant: Tenant
) -> None:
    tenant.apps[APP_ID].application_roles = {"User.Read.All"}
    tokens = AppTokenSource(authority, ClientCredential(APP_ID, secret=APP_SECRET))
    client = GraphClient(tokens, http, base_url=sim_server.url,
                         retry=RetryPolicy(attempts=1))
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    with pytest.raises(Forbidden) as caught:
        await get_presences(client, [anna.id])
    assert "admin consent" in caught.value.hint
