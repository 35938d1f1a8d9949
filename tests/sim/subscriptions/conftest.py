"""Fixtures of the subscriptions tests: a running simulator delivering to a Receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from m365sim.events import ResourceChange
from m365sim.simulator import Simulator
from tests.sim.conftest import TENANT_ID, bearer, user_token
from tests.sim.subscriptions.helpers import EncryptionKey, Receiver, make_encryption_key

HOOK = "https://hooks.contoso.test/api/notify"


@pytest.fixture
def receiver() -> Receiver:
    """The subscriber's endpoint."""
    return Receiver()


@pytest.fixture
async def running(sim: Simulator, receiver: Receiver) -> AsyncIterator[Simulator]:
    """The simulator with its time-driven work running, delivering to `receiver`."""
    sim.subscriptions.transport = httpx.ASGITransport(app=receiver)
    task = asyncio.create_task(sim.run())
    await asyncio.sleep(0)
    yield sim
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.fixture(scope="session")
def encryption_key() -> EncryptionKey:
    """One RSA-2048 encryption certificate for the whole session."""
    return make_encryption_key()


def user_id(sim: Simulator, upn: str) -> str:
    """The object id of a Contoso user."""
    tenant = sim.directory.find_tenant(TENANT_ID)
    assert tenant is not None
    user = tenant.find_user(upn)
    assert user is not None
    return user.id


def subscription_body(sim: Simulator, resource: str, *, minutes: float = 30,
                      **extra: Any) -> dict[str, Any]:
    """A create body for `resource`, expiring `minutes` from the simulator's now."""
    expires = sim.clock.now() + timedelta(minutes=minutes)
    body: dict[str, Any] = {
        "changeType": "updated",
        "notificationUrl": HOOK,
        "resource": resource,
        "expirationDateTime": expires.strftime("%Y-%m-%dT%H:%M:%S.%f0Z"),
        "clientState": "secret-state",
    }
    body.update(extra)
    return body


def svc_headers(sim: Simulator, scopes: list[str] | None = None,
                lifetime_s: int = 3599) -> dict[str, str]:
    """Authorization of the presence service account (delegated)."""
    return bearer(user_token(sim, "svc-presence@contoso.com", scopes, lifetime_s=lifetime_s))


def presence_change(user: str, availability: str = "Busy", activity: str = "InACall",
                    tenant_id: str = TENANT_ID) -> ResourceChange:
    """A presence change as the presence part publishes it."""
    return ResourceChange(
        tenant_id=tenant_id, resource=f"communications/presences/{user}",
        change_type="updated", resource_id=user, odata_type="#microsoft.graph.presence",
        odata_id=f"users/{user}/presence",
        resource_data={"@odata.type": "#microsoft.graph.presence",
                       "@odata.id": f"users/{user}/presence", "id": user,
                       "availability": availability, "activity": activity},
    )


Publish = Callable[[ResourceChange], None]
