"""The real MSAL ConfidentialClientApplication against the simulator over HTTPS."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from typing import Any

import msal
import pytest

from m365sim.clock import VirtualClock
from m365sim.model import Tenant
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID, APP_SECRET, PASSWORD, TENANT_ID
from tests.sim.entra.conftest import (
    CERT_APP,
    DESKTOP_APP,
    EXPIRED_APP,
    EXPIRED_SECRET,
    FAB_ID,
    Certificate,
)
from tests.sim.entra.msal_support import SimulatorSession, assert_msal_error, authority

GRAPH = ["https://graph.microsoft.com/.default"]


async def confidential(server: RunningServer, http: SimulatorSession, client_id: str,
                       credential: Any, tenant: str = TENANT_ID
                       ) -> msal.ConfidentialClientApplication:
    """MSAL's app, built in a thread: its constructor fetches the discovery document."""
    return await asyncio.to_thread(
        msal.ConfidentialClientApplication, client_id, client_credential=credential,
        authority=authority(server, tenant), instance_discovery=False, http_client=http)


async def test_secret_gets_an_app_token_and_msal_caches_it(
    sim_server: RunningServer, msal_http: SimulatorSession, sim: Simulator,
) -> None:
    app = await confidential(sim_server, msal_http, APP_ID, APP_SECRET)
    first = await asyncio.to_thread(app.acquire_token_for_client, GRAPH)
    assert first["token_source"] == "identity_provider", first
    claims = sim.issuer.decode(first["access_token"])
    assert claims["appid"] == APP_ID and "User.Read.All" in claims["roles"]
    second = await asyncio.to_thread(app.acquire_token_for_client, GRAPH)
    assert second["token_source"] == "cache"


@pytest.mark.parametrize("with_public_certificate", [True, False])
async def test_certificate_credential(
    sim_server: RunningServer, msal_http: SimulatorSession, sim: Simulator, clock: VirtualClock,
    fabrikam: Tenant, client_cert: Certificate, with_public_certificate: bool,
) -> None:
    # MSAL stamps its assertion with the wall clock; Entra checks it on its own clock.
    clock.set(datetime.now(UTC))
    credential: dict[str, Any] = {"private_key": client_cert.private_pem()}
    if with_public_certificate:
        credential["public_certificate"] = client_cert.pem  # PS256 + x5t#S256
    else:
        credential["thumbprint"] = _hex_thumbprint(client_cert)  # RS256 + x5t
    app = await confidential(sim_server, msal_http, CERT_APP, credential, FAB_ID)
    result = await asyncio.to_thread(app.acquire_token_for_client, GRAPH)
    assert "access_token" in result, result
    assert sim.issuer.decode(result["access_token"])["appid"] == CERT_APP


def _hex_thumbprint(cert: Certificate) -> str:
    return base64.urlsafe_b64decode(cert.x5t + "=").hex().upper()


async def test_wrong_secret_is_7000215(sim_server: RunningServer,
                                       msal_http: SimulatorSession) -> None:
    app = await confidential(sim_server, msal_http, APP_ID, "not-the-secret")
    result = await asyncio.to_thread(app.acquire_token_for_client, GRAPH)
    assert_msal_error(result, "invalid_client", 7000215)


async def test_expired_secret_is_7000222(sim_server: RunningServer, msal_http: SimulatorSession,
                                         fabrikam: Tenant) -> None:
    app = await confidential(sim_server, msal_http, EXPIRED_APP, EXPIRED_SECRET, FAB_ID)
    result = await asyncio.to_thread(app.acquire_token_for_client, GRAPH)
    assert_msal_error(result, "invalid_client", 7000222)


async def test_unknown_client_is_700016(sim_server: RunningServer,
                                        msal_http: SimulatorSession) -> None:
    unknown = "99999999-9999-4999-8999-999999999999"
    app = await confidential(sim_server, msal_http, unknown, APP_SECRET)
    result = await asyncio.to_thread(app.acquire_token_for_client, GRAPH)
    assert_msal_error(result, "unauthorized_client", 700016)


async def test_unknown_tenant_is_90002_at_discovery(sim_server: RunningServer,
                                                    msal_http: SimulatorSession) -> None:
    with pytest.raises(ValueError) as caught:
        await confidential(sim_server, msal_http, APP_ID, APP_SECRET, "nowhere.example")
    # MSAL wraps the discovery failure; Entra's answer is the exception it replaced.
    assert "AADSTS90002" in str(caught.value.__context__)


async def test_confidential_client_with_a_secret_on_a_public_app_is_700025(
    sim_server: RunningServer, msal_http: SimulatorSession, fabrikam: Tenant,
) -> None:
    app = await confidential(sim_server, msal_http, DESKTOP_APP, "any-secret", FAB_ID)
    result = await asyncio.to_thread(app.acquire_token_by_username_password,
                                     "svc@fabrikam.com", PASSWORD, ["User.Read"])
    assert_msal_error(result, "invalid_client", 700025)
