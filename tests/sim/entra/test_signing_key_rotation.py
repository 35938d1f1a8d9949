"""Microsoft's signing-key rotation, as `POST /_sim/signing-keys/rotate` plays it."""

from __future__ import annotations

import httpx
import jwt

from m365sim.simulator import Simulator
from tests.sim.conftest import TENANT_ID, app_token, bearer


async def published(client: httpx.AsyncClient) -> list[str]:
    """The kids of the tenant's keys document."""
    answer = await client.get(f"/{TENANT_ID}/discovery/v2.0/keys")
    assert answer.status_code == 200
    return [key["kid"] for key in answer.json()["keys"]]


async def test_rotation_signs_with_a_new_key_and_keeps_the_old_one_published(
    client: httpx.AsyncClient, sim: Simulator,
) -> None:
    old_kid = sim.issuer.key.kid
    old_token = app_token(sim)
    answer = await client.post("/_sim/signing-keys/rotate", json={})
    assert answer.status_code == 200
    new_kid = answer.json()["kid"]
    assert new_kid != old_kid
    assert answer.json()["published"] == [new_kid, old_kid]
    assert await published(client) == [new_kid, old_kid]
    assert jwt.get_unverified_header(app_token(sim))["kid"] == new_kid
    # Tokens signed before the rotation keep working while their key is published.
    users = await client.get("/v1.0/users", headers=bearer(old_token))
    assert users.status_code == 200, users.text


async def test_retired_keys_are_no_longer_published(
    client: httpx.AsyncClient, sim: Simulator,
) -> None:
    answer = await client.post("/_sim/signing-keys/rotate", json={"retire_previous": True})
    assert await published(client) == [answer.json()["kid"]]
    bad = await client.post("/_sim/signing-keys/rotate", json={"retire_previous": "yes"})
    assert bad.status_code == 400


async def test_validation_tokens_are_signed_with_the_new_key(sim: Simulator) -> None:
    before = sim.subscriptions.tokens.token("app", TENANT_ID, sim.clock.now())
    sim.issuer.rotate()
    after = sim.subscriptions.tokens.token("app", TENANT_ID, sim.clock.now())
    assert jwt.get_unverified_header(before)["kid"] != jwt.get_unverified_header(after)["kid"]
    assert jwt.get_unverified_header(after)["kid"] == sim.issuer.key.kid
