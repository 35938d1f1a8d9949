"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import pytest

from tests.e2e.harness import TENANT_FORMS


@pytest.fixture(params=sorted(TENANT_FORMS))
def tenant_ref(request: pytest.FixtureRequest) -> str:
    """The Contoso tenant as the admin may write `tenant_id`: its GUID, or its domain."""
    return TENANT_FORMS[str(request.param)]
