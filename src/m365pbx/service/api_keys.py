"""API keys kept in the store: the checker the service uses, and create/revoke for the CLI.

It lives in the service layer (design rule 2: `pbx/` knows nothing of the store); the
routes in `pbx/api` see just `ApiKeyChecker`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from m365pbx.clock import Clock, SystemClock
from m365pbx.pbx.api.keys import (
    ApiClientIdentity,
    InvalidApiKey,
    Scope,
    StoredKey,
    generate_api_key,
    key_id_of,
    parse_scopes,
    verify,
)
from m365pbx.store import Repositories, Store
from m365pbx.store.tables import ApiClient

TOUCH_INTERVAL = timedelta(minutes=1)
"""How stale `last_used_at` may get: a busy-lamp field polling every second is not a write."""


def stored_key(row: ApiClient) -> StoredKey:
    """Return what a row keeps of a key, for `verify`."""
    return StoredKey(
        name=row.name,
        salt=row.salt,
        key_hash=row.key_hash,
        scopes=parse_scopes(row.scopes),
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


class StoreApiKeyChecker:
    """Checks keys against the `api_clients` table and records when each was last used."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        touch_interval: timedelta = TOUCH_INTERVAL,
    ) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.touch_interval = touch_interval

    async def check(self, key: str, scope: Scope) -> ApiClientIdentity:
        """Return who `key` belongs to if it is valid and has `scope`; raise ApiKeyError else."""
        key_id = key_id_of(key)
        if key_id is None:
            raise InvalidApiKey("the API key is not valid")
        async with self.store.transaction() as tx:
            row = await tx.api_clients.by_key_id(key_id)
            identity = verify(stored_key(row) if row else None, key, scope)
            now = self.clock.now()
            if row is not None and (
                row.last_used_at is None or now - row.last_used_at >= self.touch_interval
            ):
                row.last_used_at = now
        return identity


async def create_api_client(
    tx: Repositories, name: str, scopes: Iterable[Scope | str], *, now: datetime, actor: str
) -> str:
    """Store a new client with a fresh key; return the key (the only time it exists in clear)."""
    parsed = parse_scopes(scopes)
    if not parsed:
        raise ValueError("an API key needs at least one scope")
    new = generate_api_key()
    row = await tx.api_clients.create(
        name,
        key_id=new.key_id,
        salt=new.salt,
        key_hash=new.key_hash,
        scopes=[scope.value for scope in parsed],
        now=now,
    )
    await tx.audit.append(
        at=now,
        actor=actor,
        action="api_client.create",
        object_type="api_client",
        object_id=row.id,
        details={"name": name, "scopes": sorted(scope.value for scope in parsed)},
    )
    return new.key


async def revoke_api_client(tx: Repositories, name: str, *, now: datetime, actor: str) -> bool:
    """Revoke a client's key; return False if it was revoked already (NotFoundError if none)."""
    row, changed = await tx.api_clients.revoke(name, now=now)
    if changed:
        await tx.audit.append(
            at=now,
            actor=actor,
            action="api_client.revoke",
            object_type="api_client",
            object_id=row.id,
            details={"name": name},
        )
    return changed
