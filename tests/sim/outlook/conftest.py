"""Fixtures for the outlook part's tests: tokens with calendar and contact permissions."""

from __future__ import annotations

from typing import Any

import pytest

from m365sim.model import Tenant, User
from m365sim.simulator import Simulator
from tests.sim.conftest import app_token, bearer, user_token

APP_ROLES = ["Calendars.Read", "Contacts.Read"]
USER_SCOPES = ["Calendars.Read", "Contacts.Read"]


@pytest.fixture
def app_headers(sim: Simulator) -> dict[str, str]:
    """Authorization for the Contoso app with Calendars.Read and Contacts.Read (application)."""
    return bearer(app_token(sim, APP_ROLES))


@pytest.fixture
def anna_headers(sim: Simulator) -> dict[str, str]:
    """Authorization for Anna with Calendars.Read and Contacts.Read (delegated)."""
    return bearer(user_token(sim, "anna@contoso.com", USER_SCOPES))


@pytest.fixture
def anna(tenant: Tenant) -> User:
    """Anna Schmidt."""
    user = tenant.find_user("anna@contoso.com")
    assert user is not None
    return user


@pytest.fixture
def ben(tenant: Tenant) -> User:
    """Ben Weber."""
    user = tenant.find_user("ben@contoso.com")
    assert user is not None
    return user


def view_params(start: str, end: str, **extra: Any) -> dict[str, Any]:
    """Query parameters of a calendarView request."""
    return {"startDateTime": start, "endDateTime": end, **extra}
