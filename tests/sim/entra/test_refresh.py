"""Refresh tokens: renewal, inactivity expiry and revocation, on the simulator's clock."""

from __future__ import annotations

import httpx

from m365sim.clock import VirtualClock
from m365sim.entra import entra_of
from m365sim.model import Tenant
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID, PASSWORD, TENANT_ID
from tests.sim.entra.conftest import (
    CONFIDENTIAL_APP,
    CONFIDENTIAL_SECRET,
    FAB_ID,
    assert_aad_error,
    token,
)
from tests.sim.entra.test_discovery import fixture

DAY = 86_400


async def sign_in(client: httpx.AsyncClient, upn: str = "svc-presence@contoso.com") -> str:
    response = await token(client, TENANT_ID, grant_type="password", client_id=APP_ID,
                           username=upn, password=PASSWORD,
                           scope="Presence.Read.All offline_access openid profile")
    assert response.status_code == 200, response.text
    refresh: str = response.json()["refresh_token"]
    return refresh


async def refresh(client: httpx.AsyncClient, refresh_token: str, *, tenant: str = TENANT_ID,
                  client_id: str = APP_ID, **extra: str) -> httpx.Response:
    return await token(client, tenant, grant_type="refresh_token", client_id=client_id,
                       refresh_token=refresh_token, **extra)


async def test_refresh_answers_with_a_new_refresh_token_and_a_fresh_access_token(
    client: httpx.AsyncClient, sim: Simulator, clock: VirtualClock,
) -> None:
    first = await sign_in(client)
    await clock.advance(3700)  # the first access token has expired by now
    response = await refresh(client, first, scope="Presence.Read.All offline_access openid")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(fixture("token-refresh.response.json")) <= set(body)
    assert body["refresh_token"] != first
    claims = sim.issuer.decode(body["access_token"])
    assert claims["exp"] > clock.now().timestamp()
    # refresh-tokens.md: the old refresh token is not revoked by its use.
    assert (await refresh(client, first)).status_code == 200


async def test_refresh_without_scope_keeps_the_original_grant(
    client: httpx.AsyncClient, sim: Simulator,
) -> None:
    body = (await refresh(client, await sign_in(client))).json()
    assert "Presence.Read.All" in sim.issuer.decode(body["access_token"])["scp"].split()
    assert "id_token" in body


async def test_refresh_token_dies_after_90_days_without_use(
    client: httpx.AsyncClient, clock: VirtualClock,
) -> None:
    rt = await sign_in(client)
    await clock.advance(91 * DAY)
    body = assert_aad_error(await refresh(client, rt), "invalid_grant", 700082)
    assert "inactive for 91." in body["error_description"]


async def test_a_chain_used_regularly_lives_beyond_90_days(
    client: httpx.AsyncClient, clock: VirtualClock,
) -> None:
    rt = await sign_in(client)
    for _ in range(4):
        await clock.advance(60 * DAY)
        response = await refresh(client, rt)
        assert response.status_code == 200, response.text
        rt = response.json()["refresh_token"]


async def test_revoked_sessions_give_50173(
    client: httpx.AsyncClient, sim: Simulator, tenant: Tenant,
) -> None:
    rt = await sign_in(client)
    newer = (await refresh(client, rt)).json()["refresh_token"]
    revoked = await client.post(
        "/_sim/tenants/contoso.com/users/svc-presence@contoso.com/revokeSignInSessions")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_refresh_tokens"] == 2
    for token_ in (rt, newer):
        assert_aad_error(await refresh(client, token_), "invalid_grant", 50173)
    # A new sign-in works again.
    assert (await refresh(client, await sign_in(client))).status_code == 200
    user = tenant.find_user("svc-presence@contoso.com")
    assert user is not None
    assert len(entra_of(sim).refresh_tokens.tokens_of(TENANT_ID, user.id)) == 2


async def test_revoking_an_unknown_user_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/_sim/tenants/{TENANT_ID}/users/ghost@contoso.com/revokeSignInSessions")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "Request_ResourceNotFound"


async def test_unknown_or_foreign_refresh_token_is_70000(
    client: httpx.AsyncClient, fabrikam: Tenant,
) -> None:
    assert_aad_error(await refresh(client, "1.AQgarbage"), "invalid_grant", 70000)
    rt = await sign_in(client)
    other_app = await refresh(client, rt, tenant=FAB_ID, client_id=CONFIDENTIAL_APP,
                              client_secret=CONFIDENTIAL_SECRET)
    assert_aad_error(other_app, "invalid_grant", 70000)


async def test_refresh_on_common_uses_the_tokens_tenant(
    client: httpx.AsyncClient, sim: Simulator,
) -> None:
    response = await refresh(client, await sign_in(client), tenant="common")
    assert response.status_code == 200
    assert sim.issuer.decode(response.json()["access_token"])["tid"] == TENANT_ID


async def test_user_disabled_after_sign_in_cannot_refresh(
    client: httpx.AsyncClient, tenant: Tenant,
) -> None:
    rt = await sign_in(client, "ben@contoso.com")
    user = tenant.find_user("ben@contoso.com")
    assert user is not None
    user.account_enabled = False
    assert_aad_error(await refresh(client, rt), "invalid_grant", 50057)


async def test_consent_withdrawn_after_sign_in_is_65001_on_refresh(
    client: httpx.AsyncClient, tenant: Tenant,
) -> None:
    rt = await sign_in(client)
    tenant.apps[APP_ID].delegated_consent.discard("Presence.Read.All")
    assert_aad_error(await refresh(client, rt), "invalid_grant", 65001)


async def test_confidential_client_must_authenticate_to_refresh(
    client: httpx.AsyncClient, fabrikam: Tenant,
) -> None:
    response = await token(client, FAB_ID, grant_type="password", client_id=CONFIDENTIAL_APP,
                           client_secret=CONFIDENTIAL_SECRET, username="svc@fabrikam.com",
                           password=PASSWORD, scope="User.Read offline_access")
    rt = response.json()["refresh_token"]
    bare = await refresh(client, rt, tenant=FAB_ID, client_id=CONFIDENTIAL_APP)
    assert_aad_error(bare, "invalid_client", 7000218)
    good = await refresh(client, rt, tenant=FAB_ID, client_id=CONFIDENTIAL_APP,
                         client_secret=CONFIDENTIAL_SECRET)
    assert good.status_code == 200
