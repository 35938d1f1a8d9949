"""Shown presence shared between nodes (docs/cluster.md): the node running a tenant writes
its people as its presence API shows them, another node shows the same; removals and a
takeover reach the readers, and a node that lost the lease writes nothing.

Two views over one SQLite store stand for two nodes (the PostgreSQL path, with NOTIFY, is
tests/e2e/test_cluster_api.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from m365pbx.core.leases import Lease
from m365pbx.core.policy import TeamsReading
from m365pbx.core.presence import Activity, Availability, PbxPresence, PbxState, TeamsPresence
from m365pbx.pbx.base import PbxUser
from m365pbx.service.api_handoff import ApiTenant
from m365pbx.service.api_shown import ShownSharing
from m365pbx.service.leases import Ownership
from m365pbx.service.presence_view import HubPresenceView
from m365pbx.store import SecretBox, Store, generate_key, upgrade_database
from m365pbx.sync.hub import PresenceHub
from m365pbx.sync.people import Person
from m365sim.clock import VirtualClock
from tests.service.test_presence_view import AVAILABLE, CONFIG, Nowhere

JOB = "tenant/contoso"


def person(pid: int, key: str) -> Person:
    return Person(id=pid, connection="pbx", pbx_user=PbxUser(key), teams_user_id=f"user-{pid}")


ANNA, BEN, CARL = person(1, "anna"), person(2, "ben"), person(3, "carl")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm365pbx.db'}"
    await upgrade_database(url)
    store = Store.open(url, SecretBox([generate_key()]))
    yield store
    await store.close()


class Node:
    """One node's hub, view and sharing, running the tenant or not."""

    def __init__(self, store: Store, clock: VirtualClock, people: list[Person]) -> None:
        self.hub = PresenceHub(clock, Nowhere(), Nowhere(), lambda _p: CONFIG, workers=2)
        self.hub.set_people(people)
        self.view = HubPresenceView(self.hub)
        self.view.refresh()
        self.ownership = Ownership(store, JOB)
        self.running = False
        tenant = ApiTenant("contoso", self.ownership, runs=lambda: self.running,
                           ready=lambda: True, connections={})
        self.sharing = ShownSharing(store, self.view, tenants=lambda: [tenant],
                                    connections_of={"contoso": {"pbx"}}, api_connections={})

    def shown(self) -> dict[str, PbxState | None]:
        return {p.key: p.pbx for p in self.view.people()}


async def lease(store: Store, node: str, lifetime: float) -> Lease:
    found = await store.write(lambda tx: tx.leases.acquire(JOB, node, lifetime), what="lease")
    assert found is not None
    return found


async def test_the_other_node_shows_changes_removals_and_a_new_holder_s_people(
        store: Store) -> None:
    clock = VirtualClock()
    a, b = Node(store, clock, [ANNA, BEN]), Node(store, clock, [])
    a.running, a.ownership.lease = True, await lease(store, "node-a", 0.0)
    hub = asyncio.create_task(a.hub.run())
    try:
        await a.sharing.round(full=True)
        await b.sharing.round(full=False)
        assert b.shown() == {"anna": None, "ben": None}
        assert b.view.mirrored() == {("pbx", "anna"), ("pbx", "ben")}

        async def anna_in_teams(presence: TeamsPresence, version: str) -> PbxState | None:
            """Anna's Teams presence read on node-a, shared in one round: node-b's view."""
            a.hub.teams_reading("user-1", TeamsReading(presence, clock.now().timestamp(),
                                                       version))
            await a.hub.settled()
            a.sharing.dirty.add(("pbx", "anna"))
            await a.sharing.round(full=False, publish=True, follow=False)
            await b.sharing.round(full=False, publish=False, follow=True)
            return b.shown()["anna"]

        # Teams shows Anna available: node-a's PBX side shows online, and so does node-b's.
        assert await anna_in_teams(AVAILABLE, "1") == PbxState(PbxPresence.ONLINE, "")
        # And Busy a moment later: each round between two full ones writes what changed
        # since the round before.
        busy = TeamsPresence(Availability.BUSY, Activity.BUSY)
        assert await anna_in_teams(busy, "2") == PbxState(PbxPresence.BUSY, "")

        # Ben changed and left within one gathering: the next full round still removes him.
        a.sharing.dirty.add(("pbx", "ben"))
        a.hub.set_people([ANNA])
        a.view.refresh()
        await a.sharing.round(full=False)
        await a.sharing.round(full=True)
        await b.sharing.round(full=False)
        assert list(b.shown()) == ["anna"]
    finally:
        hub.cancel()
        await asyncio.gather(hub, return_exceptions=True)

    # node-b takes the tenant over (epoch 2) and follows Anna and Carl; node-a, standing
    # by now, shows node-b's people over what its own hub still holds.
    b.hub.set_people([ANNA, CARL])
    b.running, b.ownership.lease = True, await lease(store, "node-b", 30.0)
    old, a.running = a.ownership.lease, False
    await b.sharing.round(full=True)
    assert b.view.mirrored() == set()
    await a.sharing.round(full=False)
    assert a.view.mirrored() == {("pbx", "anna"), ("pbx", "carl")}
    assert a.shown() == {"anna": None, "carl": None}  # node-b has read nothing from Teams

    # node-a, paused past its lease and resumed, writes nothing under its stale epoch.
    a.running, a.ownership.lease = True, old
    a.view.unmirror("pbx", "carl")
    await a.sharing.round(full=True)
    async with store.transaction() as tx:
        assert await tx.api_shown.followed("contoso") == {("pbx", "anna"), ("pbx", "carl")}
