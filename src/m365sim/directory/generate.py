"""Generating large tenants quickly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from m365sim.model import Tenant
    from m365sim.simulator import Simulator


def generate_users(sim: Simulator, tenant: Tenant, **options: Any) -> None:
    """Add generated users to `tenant`."""
