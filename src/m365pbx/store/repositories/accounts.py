"""Service accounts: the delegated Teams users that own presence subscriptions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from sqlalchemy import select

from m365pbx.core.credentials import SignInMethod
from m365pbx.store.repositories._common import assign
from m365pbx.store.repositories.declarable import DeclarableRepository
from m365pbx.store.repositories.tenants import CredentialRepository, TenantRepository
from m365pbx.store.tables import ServiceAccount


def normalise_upn(upn: str) -> str:
    """Return the UPN in the form stored (Entra ID compares UPNs case-insensitively)."""
    return upn.strip().lower()


@dataclass(frozen=True)
class ServiceAccountSpec:
    """The declared fields of a service account; the password is plaintext here, never in repr."""

    upn: str
    tenant: str
    sign_in_method: SignInMethod
    credential: str | None = None
    password: str | None = field(default=None, repr=False)


class ServiceAccountRepository(DeclarableRepository[ServiceAccount, ServiceAccountSpec]):
    """Service accounts, by UPN; password and refresh token are encrypted."""

    model = ServiceAccount
    kind: ClassVar[str] = "service account"
    key_column: ClassVar[str] = "upn"

    def key_of(self, spec: ServiceAccountSpec) -> str:
        """Return the account's normalised UPN."""
        return normalise_upn(spec.upn)

    async def find(self, key: str) -> ServiceAccount | None:
        """Return the account with this UPN (any case), or None."""
        return await super().find(normalise_upn(key))

    async def list_for_tenant(self, tenant_id: int) -> list[ServiceAccount]:
        """Return the tenant's service accounts, ordered by UPN."""
        query = (
            select(ServiceAccount)
            .where(ServiceAccount.tenant_id == tenant_id)
            .order_by(ServiceAccount.upn)
        )
        return list(await self.session.scalars(query))

    def password(self, row: ServiceAccount) -> str | None:
        """Return the decrypted sign-in password."""
        return self._reveal(row, "password_encrypted")

    def refresh_token(self, row: ServiceAccount) -> str | None:
        """Return the decrypted refresh token."""
        return self._reveal(row, "refresh_token_encrypted")

    async def set_refresh_token(self, object_id: int, refresh_token: str | None) -> None:
        """Store (or with None, forget) the account's refresh token; runtime state, so allowed
        on file-managed accounts too."""
        row = await self.get(object_id)
        row.refresh_token_encrypted = self.box.encrypt_optional(refresh_token)
        await self.session.flush()

    async def _apply(self, row: ServiceAccount, spec: ServiceAccountSpec) -> bool:
        upn = normalise_upn(spec.upn)
        who = f"service account {upn!r}"
        tenant = await TenantRepository(self.session, self.box).require(spec.tenant, needed_by=who)
        credential_id = None
        if spec.credential is not None:
            credentials = CredentialRepository(self.session, self.box)
            credential = await credentials.require(spec.credential, needed_by=who)
            credential_id = credential.id
        changes = [
            assign(row, "upn", upn),
            assign(row, "tenant_id", tenant.id),
            assign(row, "credential_id", credential_id),
            assign(row, "sign_in_method", spec.sign_in_method),
            self._assign_secret(row, "password_encrypted", spec.password),
        ]
        return any(changes)
