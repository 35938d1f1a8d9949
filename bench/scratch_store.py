"""A throwaway SQLite store with matched people, for the benchmarks of state kept at restart."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from m365pbx.store import (
    MatchStatus,
    PbxConnectionSpec,
    PersonRecord,
    Store,
    TenantSpec,
    create_engine,
    generate_key,
    upgrade_database,
)
from m365pbx.store.secrets import SecretBox


@contextlib.asynccontextmanager
async def scratch_store() -> AsyncIterator[tuple[Store, Path]]:
    """A migrated SQLite store in a temporary folder, and its database file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.db"
        url = f"sqlite+aiosqlite:///{path}"
        await upgrade_database(url)
        engine = create_engine(url)
        try:
            yield Store(engine, SecretBox([generate_key()])), path
        finally:
            await engine.dispose()


async def matched_people(store: Store, people: int, user_prefix: str) -> dict[int, str]:
    """Tenant `bench` with `people` people matched on one API connection: id → Teams user id."""
    async with store.transaction() as tx:
        tenant = await tx.tenants.create(TenantSpec("bench", "bench-id"))
        pbx = await tx.pbx_connections.create(PbxConnectionSpec("main", "api"))
        await tx.people.replace_for_connection(pbx.id, [
            PersonRecord(MatchStatus.MATCHED, f"P{i}", pbx_key=f"p{i}", tenant_id=tenant.id,
                         teams_user_id=f"{user_prefix}{i}", rule="email")
            for i in range(people)])
        return {p.id: p.teams_user_id or ""
                for p in await tx.people.summaries_for_connection(pbx.id)}
