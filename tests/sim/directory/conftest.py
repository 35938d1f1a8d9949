"""Fixtures of the directory tests: tokens and a tenant with generated people."""

from __future__ import annotations

import pytest

from m365sim.directory.generate import generate_users
from m365sim.model import Tenant
from m365sim.simulator import Simulator
from tests.sim.conftest import app_token, bearer, user_token

EVENTUAL = {"ConsistencyLevel": "eventual"}


@pytest.fixture
def app_headers(sim: Simulator) -> dict[str, str]:
    """Authorization for the Contoso app with application User.Read.All."""
    return bearer(app_token(sim, ["User.Read.All"]))


@pytest.fixture
def basic_headers(sim: Simulator) -> dict[str, str]:
    """Authorization for Ben with delegated User.ReadBasic.All only."""
    return bearer(user_token(sim, "ben@contoso.com", ["User.ReadBasic.All"]))


@pytest.fixture
def crowd(sim: Simulator, tenant: Tenant) -> Tenant:
    """Contoso plus 250 generated people (seed 7)."""
    generate_users(sim, tenant, users=250, seed=7)
    return tenant
