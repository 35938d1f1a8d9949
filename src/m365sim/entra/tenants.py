"""The `{tenant}` path segment of login URLs: a tenant id, a verified domain or an alias."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from m365sim.errors import AadError
from m365sim.model import AppRegistration, Tenant

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

# graph.md 0 (Hosts): besides ids and domains, three aliases name no single tenant.
ALIASES = frozenset({"common", "organizations", "consumers"})


@dataclass(frozen=True)
class Authority:
    """A resolved tenant segment: a tenant, or an alias to be resolved later."""

    segment: str
    tenant: Tenant | None

    @property
    def alias(self) -> str | None:
        """'common', 'organizations' or 'consumers' when the segment is an alias."""
        return self.segment.lower() if self.tenant is None else None


def resolve_authority(sim: Simulator, segment: str, *, error: str = "invalid_request"
                      ) -> Authority:
    """The tenant a segment names; AADSTS90002 when it names none."""
    if segment.lower() in ALIASES:
        return Authority(segment, None)
    tenant = sim.directory.find_tenant(segment)
    if tenant is None:
        raise AadError(error, 90002, segment)
    return Authority(segment, tenant)


def find_app(tenant: Tenant, app_id: str) -> AppRegistration:
    """The app registration with this client id in the tenant; AADSTS700016 otherwise."""
    app = tenant.apps.get(app_id) or tenant.apps.get(app_id.lower())
    if app is None:
        raise AadError("unauthorized_client", 700016, app_id)
    return app


def find_app_anywhere(sim: Simulator, app_id: str) -> tuple[Tenant, AppRegistration]:
    """The app and its home tenant, for the aliases (our apps live in one tenant each)."""
    for tenant in sim.directory.tenants.values():
        app = tenant.apps.get(app_id) or tenant.apps.get(app_id.lower())
        if app is not None:
            return tenant, app
    raise AadError("unauthorized_client", 700016, app_id)


def refuse_consumers(authority: Authority, app_id: str) -> None:
    """Our tenants hold work accounts only: /consumers is refused like a work-only app."""
    if authority.alias == "consumers":
        raise AadError("invalid_request", 9002332, app_id)
