"""Entra's signing keys, read from m365sim: cached with an expiry, read again for a key we
do not know (at most once per few minutes), one read however many ask at once (issue 18,
item 3); and a tenant's id looked up from its domain (item 2)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from m365pbx.graph.errors import AppNotFound, SignInUnavailable
from m365pbx.graph.signing_keys import SigningKeys, SigningKeysUnavailable
from m365pbx.graph.tenant_id import resolve_tenant_id, tenant_id_from_issuer
from m365sim.clock import VirtualClock
from m365sim.simulator import Simulator
from tests.sim.conftest import TENANT_ID

HOST = "https://sim.test"


def counting(client: httpx.AsyncClient, log: list[str]) -> httpx.AsyncClient:
    """The in-process simulator client, noting each request's path."""
    async def note(request: httpx.Request) -> None:
        log.append(request.url.path)

    client.event_hooks["request"] = [note]
    return client


async def test_keys_are_read_once_and_served_from_the_cache(
    client: httpx.AsyncClient, sim: Simulator, clock: VirtualClock,
) -> None:
    paths: list[str] = []
    keys = SigningKeys(counting(client, paths), clock, login_host=HOST)
    first = await keys.keys(TENANT_ID, {sim.issuer.key.kid})
    assert sim.issuer.key.kid in first
    await clock.advance(3600)
    assert await keys.keys(TENANT_ID, {sim.issuer.key.kid}) is first
    assert paths == [f"/{TENANT_ID}/discovery/v2.0/keys"]


async def test_many_notifications_at_once_cause_one_read(
    client: httpx.AsyncClient, sim: Simulator, clock: VirtualClock,
) -> None:
    keys = SigningKeys(client, clock, login_host=HOST)
    results = await asyncio.gather(*(keys.keys(TENANT_ID, {sim.issuer.key.kid})
                                     for _ in range(50)))
    assert keys.fetches == 1
    assert all(sim.issuer.key.kid in r for r in results)


async def test_a_rotated_key_is_read_at_once_and_made_up_ones_at_most_every_few_minutes(
    client: httpx.AsyncClient, sim: Simulator, clock: VirtualClock,
) -> None:
    keys = SigningKeys(client, clock, login_host=HOST, refetch_interval=300)
    await keys.keys(TENANT_ID)
    await clock.advance(400)
    new = sim.issuer.rotate()
    assert new.kid in await keys.keys(TENANT_ID, {new.kid})
    assert keys.fetches == 2
    for _ in range(10):
        assert "made-up" not in await keys.keys(TENANT_ID, {"made-up"})
    assert keys.fetches == 2
    await clock.advance(301)
    await keys.keys(TENANT_ID, {"made-up"})
    assert keys.fetches == 3


async def test_keys_expire_after_a_day(
    client: httpx.AsyncClient, sim: Simulator, clock: VirtualClock,
) -> None:
    keys = SigningKeys(client, clock, login_host=HOST)
    await keys.keys(TENANT_ID)
    await clock.advance(23 * 3600)
    await keys.keys(TENANT_ID)
    assert keys.fetches == 1
    await clock.advance(3600)
    await keys.keys(TENANT_ID)
    assert keys.fetches == 2


async def test_when_entra_is_unreachable_known_keys_are_kept_and_none_is_an_error(
    client: httpx.AsyncClient, sim: Simulator, clock: VirtualClock,
) -> None:
    reachable = True

    async def handler(request: httpx.Request) -> httpx.Response:
        if not reachable:
            raise httpx.ConnectError("refused", request=request)
        answer = await client.get(str(request.url))
        return httpx.Response(answer.status_code, content=answer.content,
                              headers=answer.headers)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        keys = SigningKeys(http, clock, login_host=HOST)
        known = await keys.keys(TENANT_ID)
        reachable = False
        await clock.advance(25 * 3600)
        assert await keys.keys(TENANT_ID) == known
        assert keys.last_error is not None and "cannot reach Entra ID" in keys.last_error
        fresh = SigningKeys(http, clock, login_host=HOST)
        with pytest.raises(SigningKeysUnavailable):
            await fresh.keys(TENANT_ID)
        # Not asked again at once for every notification meanwhile.
        with pytest.raises(SigningKeysUnavailable):
            await fresh.keys(TENANT_ID)
        assert fresh.fetches == 1
        reachable = True
        await clock.advance(31)
        assert await fresh.keys(TENANT_ID)


async def test_a_domain_is_looked_up_as_its_tenant_id(client: httpx.AsyncClient) -> None:
    assert await resolve_tenant_id(client, HOST, "contoso.com") == TENANT_ID
    assert await resolve_tenant_id(client, HOST, "Contoso.onmicrosoft.com") == TENANT_ID


async def test_a_tenant_id_needs_no_look_up() -> None:
    def nothing(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request expected: {request.url}")

    async with httpx.AsyncClient(transport=httpx.MockTransport(nothing)) as http:
        assert await resolve_tenant_id(http, HOST, TENANT_ID.upper()) == TENANT_ID


async def test_an_unknown_domain_is_explained(client: httpx.AsyncClient) -> None:
    with pytest.raises(AppNotFound) as caught:
        await resolve_tenant_id(client, HOST, "fabrikam.example")
    assert "AADSTS90002" in caught.value.describe()


async def test_an_unreachable_entra_is_worth_retrying() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refused)) as http:
        with pytest.raises(SignInUnavailable) as caught:
            await resolve_tenant_id(http, HOST, "contoso.com")
    assert caught.value.retryable


def test_the_tenant_id_is_read_from_the_issuer() -> None:
    assert tenant_id_from_issuer(
        f"https://login.microsoftonline.com/{TENANT_ID}/v2.0") == TENANT_ID
    assert tenant_id_from_issuer("https://login.microsoftonline.com/{tenantid}/v2.0") is None
