"""Fixtures shared by the simulator's tests: a simulator on a virtual clock, in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from m365sim.app import create_app
from m365sim.clock import VirtualClock
from m365sim.model import Tenant
from m365sim.scenario import load_scenario
from m365sim.simulator import SimSettings, Simulator
from tests.sim.conftest_server import sim_server  # noqa: F401 - the loopback HTTPS server

TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
APP_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
APP_SECRET = "Zx8~unit-test-secret~value"
PASSWORD = "p@ss w0rd!§\"'\\"

CONTOSO: dict[str, Any] = {
    "tenants": [
        {
            "id": TENANT_ID,
            "name": "Contoso",
            "domains": ["contoso.com", "contoso.onmicrosoft.com"],
            "apps": [
                {
                    "app_id": APP_ID,
                    "name": "m365pbx",
                    "secrets": [{"value": APP_SECRET}],
                    "public_client": True,
                    "delegated": ["Presence.Read.All", "Presence.ReadWrite", "User.Read.All",
                                  "Calendars.Read", "Contacts.Read", "offline_access"],
                    "application": ["User.Read.All", "Presence.ReadWrite.All",
                                    "Calendars.Read", "Contacts.Read"],
                }
            ],
            "groups": [{"name": "Sales"}],
            "users": [
                {"upn": "svc-presence@contoso.com", "display_name": "Presence Service",
                 "password": PASSWORD, "teams": True},
                {"upn": "anna@contoso.com", "display_name": "Anna Schmidt", "password": PASSWORD,
                 "business_phones": ["+49 30 5550201"], "groups": ["Sales"]},
                {"upn": "ben@contoso.com", "display_name": "Ben Weber", "password": PASSWORD},
                {"upn": "mfa@contoso.com", "display_name": "Mia Fischer", "password": PASSWORD,
                 "mfa": True},
                {"upn": "off@contoso.com", "display_name": "Olaf Former", "password": PASSWORD,
                 "enabled": False, "teams": False},
            ],
        }
    ]
}


@pytest.fixture
def clock() -> VirtualClock:
    """A virtual clock at a fixed start time."""
    return VirtualClock()


@pytest.fixture
def sim(clock: VirtualClock) -> Simulator:
    """A simulator holding the Contoso scenario, on the virtual clock."""
    simulator = Simulator(clock, SimSettings(base_url="https://sim.test",
                                             notification_latency_s=(0.0, 0.0)))
    load_scenario(simulator, CONTOSO)
    return simulator


@pytest.fixture
def tenant(sim: Simulator) -> Tenant:
    """The Contoso tenant."""
    found = sim.directory.find_tenant(TENANT_ID)
    assert found is not None
    return found


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the simulator's ASGI app in-process."""
    transport = httpx.ASGITransport(app=create_app(sim))
    async with httpx.AsyncClient(transport=transport, base_url="https://sim.test") as http:
        yield http


def app_token(sim: Simulator, roles: list[str] | None = None, *, app_id: str = APP_ID,
              lifetime_s: int = 3599) -> str:
    """An application-permission token for the Contoso app, signed by the simulator."""
    return sim.issuer.access_token(
        tenant_id=TENANT_ID, app_id=app_id, now=sim.clock.now(),
        lifetime=timedelta(seconds=lifetime_s),
        roles=roles if roles is not None else ["User.Read.All", "Presence.ReadWrite.All"],
    )


def user_token(sim: Simulator, upn: str, scopes: list[str] | None = None, *,
               lifetime_s: int = 3599) -> str:
    """A delegated token for a Contoso user, signed by the simulator."""
    tenant = sim.directory.find_tenant(TENANT_ID)
    assert tenant is not None
    user = tenant.find_user(upn)
    assert user is not None
    return sim.issuer.access_token(
        tenant_id=TENANT_ID, app_id=APP_ID, now=sim.clock.now(),
        lifetime=timedelta(seconds=lifetime_s), user_id=user.id, upn=user.user_principal_name,
        scopes=scopes if scopes is not None else ["Presence.Read.All", "User.Read.All"],
    )


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}
