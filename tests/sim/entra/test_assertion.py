"""Client credentials with a certificate assertion (certificate-credentials.md)."""

from __future__ import annotations

import httpx
import jwt
import pytest

from m365sim.clock import VirtualClock
from m365sim.entra import entra_of
from m365sim.model import Tenant
from m365sim.simulator import Simulator
from tests.sim.entra.conftest import (
    CERT_APP,
    FAB_ID,
    GRAPH_DEFAULT,
    Certificate,
    assert_aad_error,
    assertion,
    make_certificate,
    token,
)

AUDIENCE = f"https://sim.test/{FAB_ID}/oauth2/v2.0/token"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


async def redeem(client: httpx.AsyncClient, signed: str, client_id: str = CERT_APP
                 ) -> httpx.Response:
    return await token(client, FAB_ID, grant_type="client_credentials", client_id=client_id,
                       client_assertion_type=JWT_BEARER, client_assertion=signed,
                       scope=GRAPH_DEFAULT)


def now(clock: VirtualClock) -> float:
    return clock.now().timestamp()


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
async def test_assertion_signed_with_the_registered_certificate_gets_a_token(
    client: httpx.AsyncClient, sim: Simulator, fabrikam: Tenant, client_cert: Certificate,
    clock: VirtualClock, alg: str,
) -> None:
    # RS256 names the certificate by x5t (SHA-1), PS256 by x5t#S256, as MSAL does.
    signed = assertion(client_cert, audience=AUDIENCE, now=now(clock), alg=alg)
    response = await redeem(client, signed)
    assert response.status_code == 200, response.text
    claims = sim.issuer.decode(response.json()["access_token"])
    assert claims["appid"] == CERT_APP
    assert sorted(claims["roles"]) == ["Presence.Read.All", "User.Read.All"]


async def test_audience_may_name_the_tenant_by_domain(
    client: httpx.AsyncClient, fabrikam: Tenant, client_cert: Certificate, clock: VirtualClock,
) -> None:
    signed = assertion(client_cert, now=now(clock),
                       audience="https://sim.test/fabrikam.com/oauth2/v2.0/token")
    assert (await redeem(client, signed)).status_code == 200


async def test_wrong_audience_is_refused(
    client: httpx.AsyncClient, fabrikam: Tenant, client_cert: Certificate, clock: VirtualClock,
) -> None:
    for audience in ("https://login.microsoftonline.com/fabrikam.com/oauth2/v2.0/token",
                     "https://sim.test/contoso.com/oauth2/v2.0/token"):
        signed = assertion(client_cert, audience=audience, now=now(clock))
        assert_aad_error(await redeem(client, signed), "invalid_client", 50013, status=401)


async def test_expired_and_not_yet_valid_assertions_are_700024(
    client: httpx.AsyncClient, fabrikam: Tenant, client_cert: Certificate, clock: VirtualClock,
) -> None:
    signed = assertion(client_cert, audience=AUDIENCE, now=now(clock), lifetime=600)
    await clock.advance(600 + 301)  # beyond exp and the five minutes of allowed skew
    assert_aad_error(await redeem(client, signed), "invalid_client", 700024, status=401)
    future = assertion(client_cert, audience=AUDIENCE, now=now(clock) + 3600)
    assert_aad_error(await redeem(client, future), "invalid_client", 700024, status=401)


async def test_assertion_within_the_clock_skew_is_accepted(
    client: httpx.AsyncClient, fabrikam: Tenant, client_cert: Certificate, clock: VirtualClock,
) -> None:
    signed = assertion(client_cert, audience=AUDIENCE, now=now(clock) + 120)
    assert (await redeem(client, signed)).status_code == 200


async def test_unregistered_certificate_is_700027(
    client: httpx.AsyncClient, fabrikam: Tenant, clock: VirtualClock,
) -> None:
    stranger = make_certificate("stranger")
    response = await redeem(client, assertion(stranger, audience=AUDIENCE, now=now(clock)))
    body = assert_aad_error(response, "invalid_client", 700027, status=401)
    assert "not registered" in body["error_description"]


async def test_signature_by_another_key_is_700027(
    client: httpx.AsyncClient, fabrikam: Tenant, client_cert: Certificate, clock: VirtualClock,
) -> None:
    stranger = make_certificate("stranger")
    forged = assertion(stranger, audience=AUDIENCE, now=now(clock),
                       header={"x5t": client_cert.x5t})
    body = assert_aad_error(await redeem(client, forged), "invalid_client", 700027, 401)
    assert "signature" in body["error_description"]


async def test_issuer_and_subject_must_be_the_client(
    client: httpx.AsyncClient, fabrikam: Tenant, client_cert: Certificate, clock: VirtualClock,
) -> None:
    other = "11111111-2222-4333-8444-555555555555"
    mismatched = assertion(client_cert, audience=AUDIENCE, now=now(clock), sub=other)
    assert_aad_error(await redeem(client, mismatched), "invalid_client", 50048, 401)
    foreign = assertion(client_cert, audience=AUDIENCE, now=now(clock), iss=other, sub=other)
    assert_aad_error(await redeem(client, foreign), "invalid_client", 50013, 401)


async def test_unsupported_algorithm_and_garbage_are_refused(
    client: httpx.AsyncClient, fabrikam: Tenant, client_cert: Certificate, clock: VirtualClock,
) -> None:
    hmac_signed = jwt.encode({"iss": CERT_APP}, "k" * 32, algorithm="HS256",
                             headers={"x5t": client_cert.x5t})
    assert_aad_error(await redeem(client, hmac_signed), "invalid_client", 50027, 401)
    assert_aad_error(await redeem(client, "not-a-jwt"), "invalid_client", 50027, 401)


async def test_same_assertion_twice_is_accepted_as_msal_resends_it(
    client: httpx.AsyncClient, fabrikam: Tenant, client_cert: Certificate, clock: VirtualClock,
) -> None:
    signed = assertion(client_cert, audience=AUDIENCE, now=now(clock))
    assert (await redeem(client, signed)).status_code == 200
    assert (await redeem(client, signed)).status_code == 200


async def test_a_jti_reused_in_another_assertion_is_a_replay(
    client: httpx.AsyncClient, fabrikam: Tenant, client_cert: Certificate, clock: VirtualClock,
) -> None:
    first = assertion(client_cert, audience=AUDIENCE, now=now(clock), jti="fixed-id")
    second = assertion(client_cert, audience=AUDIENCE, now=now(clock) + 1, jti="fixed-id")
    assert (await redeem(client, first)).status_code == 200
    body = assert_aad_error(await redeem(client, second), "invalid_client", 50013, 401)
    assert "fixed-id" in body["error_description"]


async def test_strict_mode_refuses_any_second_use(
    client: httpx.AsyncClient, sim: Simulator, fabrikam: Tenant, client_cert: Certificate,
    clock: VirtualClock,
) -> None:
    entra_of(sim).settings.strict_assertion_jti = True
    signed = assertion(client_cert, audience=AUDIENCE, now=now(clock))
    assert (await redeem(client, signed)).status_code == 200
    assert_aad_error(await redeem(client, signed), "invalid_client", 50013, 401)


async def test_assertion_without_jti_is_refused(
    client: httpx.AsyncClient, fabrikam: Tenant, client_cert: Certificate, clock: VirtualClock,
) -> None:
    signed = assertion(client_cert, audience=AUDIENCE, now=now(clock), jti="")
    assert_aad_error(await redeem(client, signed), "invalid_client", 50013, 401)


async def test_wrong_assertion_type_is_an_invalid_request(
    client: httpx.AsyncClient, fabrikam: Tenant, client_cert: Certificate, clock: VirtualClock,
) -> None:
    response = await token(client, FAB_ID, grant_type="client_credentials", client_id=CERT_APP,
                           client_assertion_type="urn:example:saml",
                           client_assertion=assertion(client_cert, audience=AUDIENCE,
                                                      now=now(clock)), scope=GRAPH_DEFAULT)
    assert_aad_error(response, "invalid_request", 90100)
