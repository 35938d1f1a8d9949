"""A declared tenant's id: looked up from its domain at sign-in with retries, and the same
tenant declared twice run once (issue 18, items 2 and 10)."""

from __future__ import annotations

import asyncio

import httpx

from m365pbx.service.tenant_identity import TenantClaims, TenantIdentity
from m365sim.clock import VirtualClock
from tests.sim.conftest import TENANT_ID

HOST = "https://sim.test"


async def test_a_domain_is_looked_up_again_until_entra_answers(
    client: httpx.AsyncClient, clock: VirtualClock,
) -> None:
    down = True

    async def handler(request: httpx.Request) -> httpx.Response:
        if down:
            raise httpx.ConnectError("connection refused", request=request)
        answer = await client.get(str(request.url))
        return httpx.Response(answer.status_code, content=answer.content)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        identity = TenantIdentity("contoso", "contoso.com", http=http, login_host=HOST,
                                  clock=clock)
        settling = asyncio.create_task(identity.settle())
        for _ in range(100):
            await asyncio.sleep(0)
        assert identity.tenant_id is None
        assert identity.error is not None and "cannot reach Entra ID" in identity.error
        assert identity.health()["since"] is not None
        down = False
        for _ in range(20):
            await clock.advance(60)
            if settling.done():
                break
        assert await settling is True
    assert identity.health() == {"configured": "contoso.com", "id": TENANT_ID, "error": None,
                                 "since": identity.health()["since"]}


async def test_the_same_tenant_by_id_and_by_domain_runs_once(
    client: httpx.AsyncClient, clock: VirtualClock,
) -> None:
    claims = TenantClaims()
    by_id = TenantIdentity("contoso", TENANT_ID, http=client, login_host=HOST, clock=clock,
                           claims=claims)
    by_domain = TenantIdentity("contoso-mail", "contoso.com", http=client, login_host=HOST,
                               clock=clock, claims=claims)
    assert await by_id.settle() is True
    assert await by_domain.settle() is False
    assert by_domain.duplicate_of == "contoso"
    assert by_domain.error is not None and "declared twice" in by_domain.error
    assert by_id.error is None
