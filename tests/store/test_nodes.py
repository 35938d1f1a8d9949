"""The node registry (issue 25): each node records itself on the database's clock.

Every test runs on SQLite and PostgreSQL. A node is made to look silent by moving its
last sighting into the database's past, never by sleeping.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from sqlalchemy import update

from m365pbx.core.nodes import NodeSeen, summarize
from m365pbx.store import Repositories, Store
from m365pbx.store.tables import NodeRow
from tests.store.test_leases import acquire

LIFETIME = 30.0


async def nodes(store: Store) -> tuple[list[NodeSeen], datetime]:
    async with store.transaction() as tx:
        return await tx.nodes.all(), await tx.leases.database_now()


async def see(tx: Repositories, *, node: str) -> None:
    now = await tx.leases.database_now()
    await tx.nodes.seen(node, gone_before=now - timedelta(seconds=LIFETIME))


async def silence(store: Store, node: str, seconds: float) -> None:
    """Make `node` look as if it was last seen `seconds` ago."""
    async def move(tx: Repositories) -> None:
        past = await tx.leases.database_now() - timedelta(seconds=seconds)
        await tx.session.execute(update(NodeRow).where(NodeRow.node == node)
                                 .values(last_seen=past, started_at=past))

    await store.write(move, what="a sighting")


async def test_a_node_joins_is_seen_and_counts_as_live_by_the_database_s_clock(
    store: Store,
) -> None:
    await store.write(lambda tx: tx.nodes.join("gw-a"), what="node gw-a")
    await store.write(lambda tx: tx.nodes.join("gw-b"), what="node gw-b")
    found, now = await nodes(store)
    assert [n.node for n in found] == ["gw-a", "gw-b"]
    assert all(n.live(now, LIFETIME) and n.stopped_at is None for n in found)
    assert all(timedelta(0) <= now - n.last_seen < timedelta(seconds=5)
               for n in found)
    # Not seen for one lease lifetime: gone.
    await silence(store, "gw-a", 5)
    await silence(store, "gw-b", LIFETIME + 1)
    found, now = await nodes(store)
    assert [n.live(now, LIFETIME) for n in found] == [True, False]
    started = found[0].started_at
    for node in ("gw-a", "gw-b"):
        await store.write(functools.partial(see, node=node), what="a node")
    found, now = await nodes(store)
    assert all(n.live(now, LIFETIME) for n in found)
    # gw-a was live all along: its start stands. gw-b was gone: it starts again now (it
    # counts for balancing only once settled again).
    assert found[0].started_at == started
    assert now - found[1].started_at < timedelta(seconds=5)


async def test_a_clean_stop_marks_the_node_gone_and_a_restart_starts_it_again(
    store: Store,
) -> None:
    await store.write(lambda tx: tx.nodes.join("gw-a"), what="node gw-a")
    await silence(store, "gw-a", 5)
    assert await store.write(lambda tx: tx.nodes.leave("gw-a"), what="node gw-a")
    assert not await store.write(lambda tx: tx.nodes.leave("gw-x"), what="node gw-x")
    (gone,), now = await nodes(store)
    assert gone.stopped_at is not None and not gone.live(now, LIFETIME)
    await store.write(lambda tx: tx.nodes.join("gw-a"), what="node gw-a")
    (again,), now = await nodes(store)
    assert again.stopped_at is None and again.live(now, LIFETIME)
    assert again.started_at > gone.started_at  # it counts again only once settled


async def test_nodes_not_seen_for_long_are_forgotten_and_summaries_show_jobs_held(
    store: Store,
) -> None:
    for node in ("gw-a", "gw-b", "gw-old"):
        await store.write(functools.partial(see, node=node), what="a node")
    await silence(store, "gw-old", 2 * 86400)
    await acquire(store, "gw-b", job="tenant/contoso")
    await acquire(store, "gw-b", job="tenant/fabrikam")

    async def forget(tx: Repositories) -> int:
        return await tx.nodes.forget_before(
            await tx.leases.database_now() - timedelta(days=1))

    assert await store.write(forget, what="old nodes") == 1
    async with store.transaction() as tx:
        shown = summarize(await tx.nodes.all(), await tx.leases.all(),
                          await tx.leases.database_now(), LIFETIME)
    assert [(s.node, s.live, s.jobs) for s in shown] == [
        ("gw-a", True, ()), ("gw-b", True, ("tenant/contoso", "tenant/fabrikam"))]
