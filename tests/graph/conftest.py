"""m365pbx's Graph client against the simulator over HTTPS, with the real MSAL."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import httpx
import pytest

from m365pbx.graph.auth import AppTokenSource, Authority, ClientCredential
from m365pbx.graph.client import GraphClient, RetryPolicy
from m365sim.clock import VirtualClock
from m365sim.server import RunningServer
from tests.sim.conftest import APP_ID, APP_SECRET, TENANT_ID


@pytest.fixture(autouse=True)
def _no_ca_override(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests would let these override the CA bundle we configure.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


@pytest.fixture
def authority(sim_server: RunningServer) -> Authority:
    """Contoso's authority on the simulator, trusting its CA."""
    assert sim_server.ca_file is not None
    return Authority(TENANT_ID, host=sim_server.url, verify=str(sim_server.ca_file))


@pytest.fixture
async def http(sim_server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for Graph calls, trusting the simulator's CA."""
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=sim_server.ca_file),
                                 timeout=10) as client:
        yield client


@pytest.fixture
def app_client(authority: Authority, http: httpx.AsyncClient, sim_server: RunningServer,
               clock: VirtualClock) -> GraphClient:
    """A Graph client with application permissions (client credentials, real MSAL)."""
    tokens = AppTokenSource(authority, ClientCredential(APP_ID, secret=APP_SECRET))
    return GraphClient(tokens, http, base_url=sim_server.url, clock=clock,
                       retry=RetryPolicy(attempts=4, base_delay=0.01))
