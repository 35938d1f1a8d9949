"""Fixtures of the presence tests: Contoso people, a change listener, the service's clock task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from m365sim.events import ResourceChange
from m365sim.model import Tenant, User
from m365sim.simulator import Simulator
from tests.sim.conftest import app_token, bearer


@pytest.fixture
def anna(tenant: Tenant) -> User:
    """Anna: Teams licence, signed in to Teams (the scenario default)."""
    user = tenant.find_user("anna@contoso.com")
    assert user is not None
    return user


@pytest.fixture
def ben(tenant: Tenant) -> User:
    """Ben: Teams licence, signed in."""
    user = tenant.find_user("ben@contoso.com")
    assert user is not None
    return user


@pytest.fixture
def olaf(tenant: Tenant) -> User:
    """Olaf: disabled and without a Teams licence."""
    user = tenant.find_user("off@contoso.com")
    assert user is not None
    return user


@pytest.fixture
def changes(sim: Simulator) -> list[ResourceChange]:
    """Every ResourceChange published on the simulator's bus from now on."""
    seen: list[ResourceChange] = []
    sim.bus.listen(seen.append)
    return seen


@pytest.fixture
async def running(sim: Simulator) -> AsyncIterator[Simulator]:
    """The simulator with the presence service's timed work running on its clock."""
    task = asyncio.create_task(sim.presence.run())
    await asyncio.sleep(0)
    yield sim
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.fixture
def app_headers(sim: Simulator) -> dict[str, str]:
    """Authorization for the Contoso app with Presence.ReadWrite.All."""
    return bearer(app_token(sim))


def shown(sim: Simulator, tenant: Tenant, user: User) -> tuple[str, str]:
    """The (availability, activity) Graph reports for `user` now."""
    body = sim.presence.read(tenant, user.id)
    assert body is not None
    return body["availability"], body["activity"]
