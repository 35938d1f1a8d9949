"""Where a PBX connection's effective mapping comes from: defaults, tenant, connection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from m365pbx.core.mapping import MappingError, MappingOverlay, parse_mapping_overlay
from m365pbx.errors import UserInputError
from m365pbx.store import Repositories


def _overlay(document: Mapping[str, Any] | None, source: str) -> MappingOverlay:
    try:
        return parse_mapping_overlay(document or None, source=source)
    except MappingError as exc:
        raise UserInputError(
            "stored mapping is invalid:\n  " + "\n  ".join(exc.problems), source=source
        ) from None


async def stored_overlays(tx: Repositories, connection_name: str) -> list[MappingOverlay]:
    """The tenant's and then the connection's stored overlays for one PBX connection."""
    connection = await tx.pbx_connections.find(connection_name)
    if connection is None:
        names = ", ".join(c.name for c in await tx.pbx_connections.list_all()) or "none"
        raise UserInputError(f"no PBX connection {connection_name!r} (known: {names})")
    overlays = []
    tenant_name = connection.settings.get("tenant")
    if tenant_name:
        tenant = await tx.tenants.find(str(tenant_name))
        if tenant is not None:
            overlays.append(_overlay(tenant.mapping_overrides, f"tenant {tenant.name}"))
    overlays.append(_overlay(connection.mapping_overrides, f"connection {connection.name}"))
    return overlays
