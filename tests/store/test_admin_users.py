"""Admin users of the admin UI: unique names, hashes only, a lock after failures in a row."""

from __future__ import annotations

from datetime import timedelta

import pytest

from m365pbx.store import Store
from m365pbx.store.errors import ConflictError
from tests.store.helpers import NOW


async def test_failures_in_a_row_lock_and_a_success_starts_again(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.admin_users.create("alice", "$argon2id$hash", now=NOW)
        with pytest.raises(ConflictError, match="alice"):
            await tx.admin_users.create("alice", "$argon2id$other", now=NOW)
    async with store.transaction() as tx:
        row = await tx.admin_users.find("alice")
        assert row is not None
        for _ in range(2):
            assert not await tx.admin_users.failed(row, now=NOW, limit=3,
                                                   lock_for=timedelta(minutes=15))
        await tx.admin_users.signed_in(row, now=NOW)
        assert row.failed_attempts == 0 and row.last_sign_in_at == NOW
        results = [await tx.admin_users.failed(row, now=NOW, limit=3,
                                               lock_for=timedelta(minutes=15))
                   for _ in range(3)]
        assert results == [False, False, True]
    async with store.transaction() as tx:
        row = await tx.admin_users.find("alice")
        assert row is not None and row.locked_until == NOW + timedelta(minutes=15)
        assert [r.name for r in await tx.admin_users.list_all()] == ["alice"]
        assert await tx.admin_users.set_password("alice", "$argon2id$new") is not None
        assert row.locked_until is None
        assert await tx.admin_users.set_password("bob", "x") is None
