"""Webhook handoffs (issue 25): notifications one node received for a tenant another node
runs wait in the database until that node takes them, fenced by its lease, or expire.

Every test runs on SQLite and PostgreSQL; expiry is the database's clock (a lifetime of
zero is expired at once), never a sleep.
"""

from __future__ import annotations

import asyncio

import pytest

from m365pbx.core.leases import Lease
from m365pbx.store import FencedOut, Repositories, Store
from m365pbx.store.repositories.handoffs import CHANNEL, HandedOff

BODY = '{"value": [{"subscriptionId": "s-1"}]}'


async def hand(store: Store, tenant: str, body: str = BODY, *, lifetime: float = 120.0,
               notifications: int = 1) -> None:
    await store.write(lambda tx: tx.handoffs.add(tenant, body, notifications=notifications,
                                                 received_by="node-b", lifetime=lifetime),
                      what="a handoff")


async def take(store: Store, tenant: str, limit: int = 100) -> list[HandedOff]:
    return await store.write(lambda tx: tx.handoffs.take(tenant, limit), what="taking")


async def backlog(store: Store) -> dict[str, int]:
    async with store.transaction() as tx:
        return await tx.handoffs.backlog()


async def test_the_holder_takes_its_tenant_s_rows_oldest_first_and_once(store: Store) -> None:
    for index in range(3):
        await hand(store, "contoso", f'{{"value": [{index}]}}', notifications=2)
    await hand(store, "fabrikam")
    assert await backlog(store) == {"contoso": 6, "fabrikam": 1}
    first = await take(store, "contoso", limit=2)
    assert [r.body for r in first] == ['{"value": [0]}', '{"value": [1]}']
    assert (first[0].notifications, first[0].received_by) == (2, "node-b")
    assert [r.body for r in await take(store, "contoso")] == ['{"value": [2]}']
    assert await take(store, "contoso") == []  # deleted as taken: nobody gets them twice
    assert await backlog(store) == {"fabrikam": 1}


async def test_expired_rows_are_not_taken_but_dropped_and_counted(store: Store) -> None:
    await hand(store, "contoso", lifetime=0.0, notifications=4)
    await hand(store, "contoso", '{"value": ["live"]}')
    assert [r.body for r in await take(store, "contoso")] == ['{"value": ["live"]}']
    assert await backlog(store) == {"contoso": 4}  # waiting, but nobody may act on them
    dropped = await store.write(lambda tx: tx.handoffs.drop_expired("contoso"), what="expiry")
    assert dropped == 4
    assert await backlog(store) == {}


async def test_a_stale_holder_cannot_take_the_new_holder_s_rows(store: Store) -> None:
    job = "tenant/contoso"
    old = await store.write(lambda tx: tx.leases.acquire(job, "node-a", 0.0), what="lease")
    new = await store.write(lambda tx: tx.leases.acquire(job, "node-b", 30.0), what="lease")
    assert isinstance(old, Lease) and isinstance(new, Lease) and new.epoch == 2
    await hand(store, "contoso")

    async def taking(tx: Repositories) -> list[HandedOff]:
        return await tx.handoffs.take("contoso")

    with pytest.raises(FencedOut, match="'node-b' holds it at epoch 2"):
        await store.fenced_write(old, taking, what="handed notifications")
    assert await backlog(store) == {"contoso": 1}
    assert [r.body for r in await store.fenced_write(new, taking, what="handed")] == [BODY]


@pytest.mark.postgres
async def test_postgres_wakes_listeners_with_the_tenant_s_name_at_commit(
        store: Store, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    heard: asyncio.Queue[str] = asyncio.Queue()
    async with store.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        listener = raw.driver_connection
        assert listener is not None
        await listener.add_listener(CHANNEL, lambda *args: heard.put_nowait(args[3]))
        # A body far beyond NOTIFY's 8000-byte payload: the row carries it, not the wake-up.
        big = '{"value": [' + ",".join(['"x"'] * 5000) + "]}"
        await hand(store, "contoso", big)
        assert await asyncio.wait_for(heard.get(), timeout=30) == "contoso"
    assert [r.body for r in await take(store, "contoso")] == [big]
