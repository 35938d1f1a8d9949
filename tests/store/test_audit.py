"""The audit log: append-only, newest first, no secrets."""

from __future__ import annotations

from datetime import timedelta

import pytest

from m365pbx.store import Store
from m365pbx.store.repositories.audit import REDACTED
from tests.store.helpers import NOW


async def test_append_and_list_newest_first_with_limit(store: Store) -> None:
    async with store.transaction() as tx:
        for minute in (1, 3, 2):
            await tx.audit.append(
                at=NOW + timedelta(minutes=minute),
                actor="admin",
                action="update",
                object_type="tenant",
                object_id=minute,
                details={"minute": minute},
            )
        await tx.audit.append(at=NOW, actor="system", action="start", object_type="service")
    async with store.transaction() as tx:
        events = await tx.audit.list_recent(limit=3)
        assert [e.details.get("minute") for e in events] == [3, 2, 1]
        assert [e.object_id for e in await tx.audit.list_recent(object_type="service")] == [None]
        only = await tx.audit.list_recent(object_type="tenant", object_id=2)
        assert [e.at for e in only] == [NOW + timedelta(minutes=2)]
        assert "admin" in repr(events[0])
        with pytest.raises(ValueError, match="limit"):
            await tx.audit.list_recent(limit=0)


async def test_secret_looking_details_are_redacted(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.audit.append(
            at=NOW,
            actor="admin",
            action="create",
            object_type="service_account",
            details={
                "upn": "svc@contoso.com",
                "password": "hunter2",
                "nested": [{"refresh_token": "rt", "client_secret": "cs", "pbx_key": "alice"}],
            },
        )
    async with store.transaction() as tx:
        (event,) = await tx.audit.list_recent()
    assert event.details == {
        "upn": "svc@contoso.com",
        "password": REDACTED,
        "nested": [{"refresh_token": REDACTED, "client_secret": REDACTED, "pbx_key": "alice"}],
    }
