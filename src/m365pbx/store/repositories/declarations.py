"""Write the objects declared in the configuration file into the store, in one go."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.errors import ConflictError
from m365pbx.store.repositories.accounts import ServiceAccountRepository, ServiceAccountSpec
from m365pbx.store.repositories.declarable import DeclarableRepository
from m365pbx.store.repositories.pbx_connections import PbxConnectionRepository, PbxConnectionSpec
from m365pbx.store.repositories.tenants import (
    CredentialRepository,
    CredentialSpec,
    TenantRepository,
    TenantSpec,
)
from m365pbx.store.secrets import SecretBox


@dataclass(frozen=True)
class Declarations:
    """Everything the configuration file declares."""

    tenants: Sequence[TenantSpec] = ()
    credentials: Sequence[CredentialSpec] = ()
    service_accounts: Sequence[ServiceAccountSpec] = ()
    pbx_connections: Sequence[PbxConnectionSpec] = ()


@dataclass
class SyncReport:
    """What writing the declarations changed; each entry reads like "tenant 'contoso'"."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Return whether anything in the store changed."""
        return bool(self.created or self.updated or self.adopted or self.removed)


async def sync_declared(
    session: AsyncSession, box: SecretBox, declarations: Declarations
) -> SyncReport:
    """Upsert the declared objects as file-managed and remove file-managed ones not declared.

    Run it inside one transaction: on any error (a duplicate, a dangling reference, an object
    still in use) the caller rolls back and the store is as it was.
    """
    steps: list[tuple[DeclarableRepository[Any, Any], Sequence[Any]]] = [
        (TenantRepository(session, box), declarations.tenants),
        (CredentialRepository(session, box), declarations.credentials),
        (ServiceAccountRepository(session, box), declarations.service_accounts),
        (PbxConnectionRepository(session, box), declarations.pbx_connections),
    ]
    for repository, specs in steps:
        _refuse_duplicates(repository, specs)
    report = SyncReport()
    for repository, specs in steps:
        for spec in specs:
            change = await repository.upsert_declared(spec)
            label = f"{repository.kind} {repository.key_of(spec)!r}"
            getattr(report, change.value).append(label)
    # Children before parents, so a parent is never removed before what refers to it.
    for repository, specs in reversed(steps):
        keys = {repository.key_of(spec) for spec in specs}
        for key in await repository.remove_undeclared(keys):
            report.removed.append(f"{repository.kind} {key!r}")
    return report


def _refuse_duplicates(repository: DeclarableRepository[Any, Any], specs: Sequence[Any]) -> None:
    counts = Counter(repository.key_of(spec) for spec in specs)
    twice = sorted(key for key, count in counts.items() if count > 1)
    if twice:
        raise ConflictError(
            f"the configuration declares {repository.kind} {', '.join(map(repr, twice))} "
            "more than once"
        )
