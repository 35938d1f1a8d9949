"""Saved presence state on several nodes (issue 25): a tenant's sessions and last presence
are written fenced by the tenant's lease. A paused old holder, resumed with its stale epoch,
cannot overwrite or delete what the new holder saved; the refusal is counted and told, and
not retried for ever. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from m365pbx.core.leases import Lease
from m365pbx.core.policy import LineReading
from m365pbx.core.presence import LineState
from m365pbx.pbx.base import PbxUser
from m365pbx.service.leases import Ownership, StoreLeases
from m365pbx.service.session_store import SessionPersistence
from m365pbx.service.tenant_fence import TenantFence
from m365pbx.store import Store
from m365pbx.sync.hub import PresenceHub
from m365pbx.sync.leases import LeaseKeeper
from m365pbx.sync.people import Person
from m365sim.clock import VirtualClock
from tests.store.test_calendar_blocks import people
from tests.sync.test_hub import CONFIG, RecordingPbx, RecordingTeams

JOB = "tenant/contoso"


class Node:
    """One node's hub and saved presence state, its writes going through `ownership`."""

    def __init__(self, store: Store, clock: VirtualClock, ownership: Ownership,
                 anna: Person) -> None:
        self.refusals: list[tuple[str, str]] = []
        self.teams = RecordingTeams()
        self.hub = PresenceHub(clock, RecordingPbx(), self.teams, lambda _p: CONFIG)
        self.sessions = SessionPersistence(
            store, self.hub, clock, writes_for=lambda _tenant: ownership,
            refused=lambda tenant, why: self.refusals.append((tenant, why)))
        self.hub.set_people([anna])
        self.anna = anna

    async def line(self, state: LineState, at: float, sequence: int) -> None:
        self.hub.line_state(self.anna.connection, self.anna.key,
                            LineReading(state, at, sequence))
        await self.hub.settled()
        await self.sessions.flush()


@pytest.fixture
async def running() -> AsyncIterator[Callable[[Node], None]]:
    tasks: list[asyncio.Task[None]] = []

    def start(node: Node) -> None:
        node.sessions.loaded.set()
        tasks.append(asyncio.create_task(node.hub.run()))

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def leases(store: Store) -> tuple[Lease, Lease]:
    """node-a held the tenant (epoch 1), node-b took it over (epoch 2)."""
    async with store.transaction() as tx:
        old = await tx.leases.acquire(JOB, "node-a", 30)
        assert old is not None
        await tx.leases.release(old)
    async with store.transaction() as tx:
        new = await tx.leases.acquire(JOB, "node-b", 30)
    assert new is not None and new.epoch == old.epoch + 1
    return old, new


async def test_a_stale_holder_cannot_overwrite_the_new_holder_s_presence_state(
    store: Store, running: Callable[[Node], None], caplog: pytest.LogCaptureFixture,
) -> None:
    ids = await people(store, "anna")
    anna = Person(ids["anna"], "main", PbxUser("anna"), "u-anna", "contoso")
    clock = VirtualClock()
    old, new = await leases(store)
    stale, held = Ownership(store, JOB), Ownership(store, JOB)
    stale.lease, held.lease = old, new
    a, b = Node(store, clock, stale, anna), Node(store, clock, held, anna)
    running(a)
    running(b)
    now = clock.now().timestamp()

    # node-b, the holder, saves Anna's call: the session it wrote in Teams, the line state.
    await b.line(LineState.ON_THE_PHONE, now, 1)
    assert [row[0] for row in await b.sessions.saved_sessions()] == [anna.id]

    # node-a, paused while it held the tenant and resumed: it sees the call end and would
    # delete the session row and save the line as idle. The database refuses it.
    caplog.set_level(logging.WARNING)
    await a.line(LineState.ON_THE_PHONE, now, 1)
    await a.line(LineState.IDLE, clock.now().timestamp(), 2)
    await clock.advance(CONFIG.call_end_hold_down + 1)
    await a.hub.settled()
    await a.sessions.flush()
    # node-a cleared the session (in its Teams sink), and would have deleted its row.
    assert [action.presence for _, action in a.teams.actions][-1] is None
    assert [row[0] for row in await b.sessions.saved_sessions()] == [anna.id]
    saved = (await b.sessions.load("contoso"))[anna.id].snapshot
    assert saved.line is not None and saved.line.state is LineState.ON_THE_PHONE
    assert a.refusals and all("'node-b' holds it at epoch 2" in why for _, why in a.refusals)
    assert a.sessions.counters["not_saved"] >= 1
    # Refused, not retried for ever: nothing is left pending.
    assert a.sessions.pending == 0
    assert any("not saving the presence state" in r.message for r in caplog.records)

    # The holder's own changes are saved as before.
    await b.line(LineState.IDLE, clock.now().timestamp(), 2)
    await clock.advance(CONFIG.call_end_hold_down + 1)
    await b.hub.settled()
    await b.sessions.flush()
    assert await b.sessions.saved_sessions() == []
    assert b.refusals == []


async def test_one_node_acts_for_everyone_and_a_standby_for_no_one(
    store: Store, caplog: pytest.LogCaptureFixture,
) -> None:
    clock = VirtualClock()
    alone = TenantFence(store, "gw-1", {}, {})
    assert alone.acts_for("contoso") and alone.serves("contoso")
    assert alone.writes_for("contoso") is store

    ownership = Ownership(store, JOB)

    async def work(_lease: Lease) -> None:
        await asyncio.Event().wait()

    keeper = LeaseKeeper(StoreLeases(store), JOB, "gw-2", work, clock)
    standby = TenantFence(store, "gw-2", {"contoso": keeper}, {"contoso": ownership})
    caplog.set_level(logging.WARNING)
    assert not standby.serves("contoso")
    assert not standby.acts_for("contoso") and not standby.acts_for("contoso")
    assert standby.writes_for("contoso") is None
    assert standby.counted(JOB) == {"refused_writes": 2, "refused_saves": 0}
    told = [r for r in caplog.records if "does not run tenant contoso" in r.message]
    assert len(told) == 1  # logged once, counted each time
    assert "starting" in told[0].message
