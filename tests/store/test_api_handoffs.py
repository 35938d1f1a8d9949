"""The presence API on every node (issue 25): what a PBX sent to a node that does not run
the tenant waits in `api_handoffs` for the holder, and the holder's shown presence waits
in `api_shown` for the other nodes.

Every test runs on SQLite and PostgreSQL; expiry is the database's clock (a lifetime of
zero is expired at once), never a sleep.
"""

from __future__ import annotations

import asyncio

import pytest

from m365pbx.core.leases import Lease
from m365pbx.store import (
    API_CHANNEL,
    SHOWN_CHANNEL,
    ApiHandedOff,
    FencedOut,
    Repositories,
    Store,
    shown_version,
)


async def hand(store: Store, body: str, *, kind: str = "events", items: int = 1,
               lifetime: float = 120.0, tenant: str = "contoso") -> None:
    await store.write(lambda tx: tx.api_handoffs.add(
        tenant, "switchboard", kind, body, items=items, received_by="node-b",
        lifetime=lifetime), what="a handoff")


async def take(store: Store, *, limit: int = 100, room: int | None = None,
               tenant: str = "contoso") -> list[ApiHandedOff]:
    return await store.write(lambda tx: tx.api_handoffs.take(tenant, limit=limit, room=room),
                             what="taking")


async def backlog(store: Store) -> dict[str, int]:
    async with store.transaction() as tx:
        return await tx.api_handoffs.backlog()


async def test_the_holder_takes_rows_oldest_first_and_once(store: Store) -> None:
    for index in range(3):
        await hand(store, f"[{index}]", items=2)
    await hand(store, "[9]", tenant="fabrikam")
    assert await backlog(store) == {"contoso": 6, "fabrikam": 1}
    first = await take(store, limit=2)
    assert [r.body for r in first] == ["[0]", "[1]"]
    assert (first[0].connection, first[0].kind, first[0].items, first[0].received_by) == (
        "switchboard", "events", 2, "node-b")
    assert [r.body for r in await take(store)] == ["[2]"]
    assert await take(store) == []  # deleted as taken: nobody applies them twice
    assert await backlog(store) == {"fabrikam": 1}


async def test_events_wait_in_order_until_the_connection_has_room(store: Store) -> None:
    await hand(store, "[0]", items=3)
    await hand(store, "[1]", items=3)
    await hand(store, "[2]", items=1)
    # Room for 4: the first fits, the second does not, and the third must not overtake it.
    assert [r.body for r in await take(store, room=4)] == ["[0]"]
    assert await take(store, room=2) == []
    assert [r.body for r in await take(store, room=4)] == ["[1]", "[2]"]


async def test_a_directory_needs_no_room_and_passes_waiting_events(store: Store) -> None:
    # The holder follows nobody before it has a directory: events wait, the directory not.
    await hand(store, "[0]", items=1)
    await hand(store, '[{"key": "anna", "fields": {}}]', kind="users", items=5000)
    await hand(store, "[1]", items=1)
    taken = await take(store, room=0)
    assert [(r.kind, r.items) for r in taken] == [("users", 5000)]
    assert [r.body for r in await take(store, room=1)] == ["[0]"]  # still in order
    assert [r.body for r in await take(store, room=1)] == ["[1]"]


async def test_expired_rows_are_not_taken_but_dropped_and_returned(store: Store) -> None:
    await hand(store, "[old]", lifetime=0.0, items=4)
    await hand(store, "[live]")
    assert [r.body for r in await take(store)] == ["[live]"]
    assert await backlog(store) == {"contoso": 4}  # waiting, but nobody may apply them
    dropped = await store.write(lambda tx: tx.api_handoffs.drop_expired("contoso"),
                                what="expiry")
    assert [(r.body, r.items) for r in dropped] == [("[old]", 4)]
    assert await backlog(store) == {}


async def test_a_stale_holder_cannot_take_the_new_holder_s_rows(store: Store) -> None:
    job = "tenant/contoso"
    old = await store.write(lambda tx: tx.leases.acquire(job, "node-a", 0.0), what="lease")
    new = await store.write(lambda tx: tx.leases.acquire(job, "node-b", 30.0), what="lease")
    assert isinstance(old, Lease) and isinstance(new, Lease)
    await hand(store, "[0]")

    async def taking(tx: Repositories) -> list[ApiHandedOff]:
        return await tx.api_handoffs.take("contoso")

    with pytest.raises(FencedOut):
        await store.fenced_write(old, taking, what="handed events")
    assert await backlog(store) == {"contoso": 1}
    assert [r.body for r in await store.fenced_write(new, taking, what="handed")] == ["[0]"]


async def put(store: Store, version: int, rows: list[tuple[str, str, str | None]],
              tenant: str = "contoso") -> None:
    await store.write(lambda tx: tx.api_shown.put(tenant, version, rows), what="shown")


async def test_readers_get_what_changed_after_the_version_they_saw(store: Store) -> None:
    await put(store, shown_version(1, 1), [("switchboard", "anna", '{"a": 1}'),
                                        ("switchboard", "ben", '{"b": 1}')])
    await put(store, shown_version(1, 2), [("switchboard", "anna", '{"a": 2}')])
    await put(store, shown_version(1, 1), [("other", "carl", "{}")], tenant="fabrikam")
    async with store.transaction() as tx:
        everything = await tx.api_shown.since("contoso", 0)
        later = await tx.api_shown.since("contoso", shown_version(1, 1))
        assert await tx.api_shown.newest("contoso") == shown_version(1, 2)
    assert [(r.key, r.body) for r in everything] == [("ben", '{"b": 1}'), ("anna", '{"a": 2}')]
    assert [(r.key, r.body, r.version) for r in later] == [("anna", '{"a": 2}',
                                                           shown_version(1, 2))]


async def test_a_newer_holder_s_rows_sort_after_and_tombstones_are_changes(
        store: Store) -> None:
    # The old holder wrote a high counter; the new one's first write still comes after it.
    await put(store, shown_version(1, 70_000), [("switchboard", "anna", "{}"),
                                             ("switchboard", "ben", "{}")])
    seen = shown_version(1, 70_000)
    await put(store, shown_version(2, 1), [("switchboard", "ben", None)])
    async with store.transaction() as tx:
        changed = await tx.api_shown.since("contoso", seen)
        followed = await tx.api_shown.followed("contoso")
    assert [(r.key, r.body) for r in changed] == [("ben", None)]
    assert followed == {("switchboard", "anna")}


@pytest.mark.postgres
async def test_postgres_wakes_listeners_on_both_channels_at_commit(
        store: Store, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    heard: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    async with store.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        listener = raw.driver_connection
        assert listener is not None
        for channel in (API_CHANNEL, SHOWN_CHANNEL):
            await listener.add_listener(
                channel, lambda *args: heard.put_nowait((args[2], args[3])))
        big = "[" + ",".join(['"x"'] * 5000) + "]"  # far over NOTIFY's 8000 bytes
        await hand(store, big, items=5000)
        assert await asyncio.wait_for(heard.get(), timeout=30) == (API_CHANNEL, "contoso")
        await put(store, shown_version(1, 1), [("switchboard", "anna", big)])
        assert await asyncio.wait_for(heard.get(), timeout=30) == (SHOWN_CHANNEL, "contoso")
    assert [r.body for r in await take(store)] == [big]
