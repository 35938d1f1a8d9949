"""Tenants and credentials (app registrations)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import select

from m365pbx.core.credentials import Permission
from m365pbx.store.enums import CredentialKind
from m365pbx.store.errors import NotFoundError
from m365pbx.store.repositories._common import assign
from m365pbx.store.repositories.declarable import DeclarableRepository
from m365pbx.store.tables import Credential, Tenant


@dataclass(frozen=True)
class TenantSpec:
    """The declared fields of a tenant."""

    name: str
    entra_tenant_id: str
    display_name: str = ""
    mapping_overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CredentialSpec:
    """The declared fields of an app registration; secrets are plaintext here, never in repr."""

    name: str
    tenant: str
    client_id: str
    kind: CredentialKind
    client_secret: str | None = field(default=None, repr=False)
    certificate_key: str | None = field(default=None, repr=False)
    certificate_thumbprint: str | None = None
    permissions: Sequence[Permission] = ()

    def __post_init__(self) -> None:
        if self.kind is CredentialKind.SECRET and not self.client_secret:
            raise ValueError(f"credential {self.name!r} of kind 'secret' needs a client secret")
        if self.kind is CredentialKind.CERTIFICATE and not self.certificate_key:
            raise ValueError(
                f"credential {self.name!r} of kind 'certificate' needs a certificate key"
            )


class TenantRepository(DeclarableRepository[Tenant, TenantSpec]):
    """Tenants, by name."""

    model = Tenant
    kind: ClassVar[str] = "tenant"

    def key_of(self, spec: TenantSpec) -> str:
        """Return the tenant's name."""
        return spec.name

    async def find_by_entra_id(self, entra_tenant_id: str) -> Tenant | None:
        """Return the tenant with this Entra ID tenant id, or None."""
        query = select(Tenant).where(Tenant.entra_tenant_id == entra_tenant_id)
        return (await self.session.scalars(query)).one_or_none()

    async def require(self, name: str, *, needed_by: str) -> Tenant:
        """Return the tenant called `name`, or raise NotFoundError saying who needed it."""
        row = await self.find(name)
        if row is None:
            raise NotFoundError(f"{needed_by} names tenant {name!r}, which does not exist")
        return row

    async def _apply(self, row: Tenant, spec: TenantSpec) -> bool:
        changes = [
            assign(row, "name", spec.name),
            assign(row, "entra_tenant_id", spec.entra_tenant_id),
            assign(row, "display_name", spec.display_name),
            assign(row, "mapping_overrides", dict(spec.mapping_overrides)),
        ]
        return any(changes)


class CredentialRepository(DeclarableRepository[Credential, CredentialSpec]):
    """App registrations, by name; their secrets are encrypted."""

    model = Credential
    kind: ClassVar[str] = "credential"

    def key_of(self, spec: CredentialSpec) -> str:
        """Return the credential's name."""
        return spec.name

    def client_secret(self, row: Credential) -> str | None:
        """Return the decrypted client secret."""
        return self._reveal(row, "client_secret_encrypted")

    def certificate_key(self, row: Credential) -> str | None:
        """Return the decrypted certificate private key (PEM)."""
        return self._reveal(row, "certificate_key_encrypted")

    async def require(self, name: str, *, needed_by: str) -> Credential:
        """Return the credential called `name`, or raise NotFoundError saying who needed it."""
        row = await self.find(name)
        if row is None:
            raise NotFoundError(f"{needed_by} names credential {name!r}, which does not exist")
        return row

    async def _apply(self, row: Credential, spec: CredentialSpec) -> bool:
        tenants = TenantRepository(self.session, self.box)
        tenant = await tenants.require(spec.tenant, needed_by=f"credential {spec.name!r}")
        changes = [
            assign(row, "name", spec.name),
            assign(row, "tenant_id", tenant.id),
            assign(row, "client_id", spec.client_id),
            assign(row, "kind", spec.kind),
            assign(row, "certificate_thumbprint", spec.certificate_thumbprint),
            assign(row, "permissions", [Permission(p).value for p in spec.permissions]),
            self._assign_secret(row, "client_secret_encrypted", spec.client_secret),
            self._assign_secret(row, "certificate_key_encrypted", spec.certificate_key),
        ]
        return any(changes)
