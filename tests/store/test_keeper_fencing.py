"""Calendar blocks and contact books on several nodes (issue 25): they are saved fenced by
the tenant's lease, like the presence state. A node paused while it ran the tenant and
resumed with its stale epoch cannot overwrite what the new holder saved; the refusal is
logged, and the stale reading is dropped rather than retried for ever. SQLite and
PostgreSQL."""

from __future__ import annotations

import logging

import pytest

from m365pbx.core.contacts.index import ContactIndex
from m365pbx.core.policy.state import CalendarBlock
from m365pbx.core.presence import PbxPresence
from m365pbx.service.calendar_store import CalendarKeeper
from m365pbx.service.contacts_store import ContactsKeeper
from m365pbx.service.leases import Ownership
from m365pbx.store import Store
from m365pbx.sync.calendar import CalendarReader
from m365pbx.sync.contacts import ContactsSync, KeptBook
from m365pbx.sync.hub import PresenceHub
from m365sim.clock import VirtualClock
from tests.store.test_calendar_blocks import people
from tests.store.test_contact_books import JUERGEN
from tests.store.test_session_fencing import JOB, leases
from tests.sync.test_hub import CONFIG, RecordingPbx, RecordingTeams

REVIEW = CalendarBlock(PbxPresence.MEETING, 1_800_000_000.0, 1_800_001_800.0, "Review")
STALE = CalendarBlock(PbxPresence.AWAY, 1_700_000_000.0, 1_700_001_800.0, "Old")


def calendar_keeper(store: Store, clock: VirtualClock, ownership: Ownership) -> CalendarKeeper:
    hub = PresenceHub(clock, RecordingPbx(), RecordingTeams(), lambda _p: CONFIG)
    reader = CalendarReader("contoso", None, hub, clock, lambda _p: None)
    return CalendarKeeper(store, reader, clock, writes=ownership)


def contacts_keeper(store: Store, clock: VirtualClock, ownership: Ownership) -> ContactsKeeper:
    hub = PresenceHub(clock, RecordingPbx(), RecordingTeams(), lambda _p: CONFIG)
    sync = ContactsSync("contoso", None, ContactIndex(), hub, clock, lambda _p: None)
    return ContactsKeeper(store, sync, clock, writes=ownership)


async def owners(store: Store) -> tuple[Ownership, Ownership]:
    """node-a's stale ownership (epoch 1) and node-b's held one (epoch 2)."""
    old, new = await leases(store)
    stale, held = Ownership(store, JOB), Ownership(store, JOB)
    stale.lease, held.lease = old, new
    return stale, held


async def test_a_stale_holder_cannot_overwrite_the_calendar_blocks(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    anna = (await people(store, "anna"))["anna"]
    clock = VirtualClock()
    stale, held = await owners(store)
    a, b = calendar_keeper(store, clock, stale), calendar_keeper(store, clock, held)

    b.reader.unsaved_again({anna: (REVIEW,)})
    await b.save()
    caplog.set_level(logging.WARNING)
    a.reader.unsaved_again({anna: (STALE,)})
    await a.save()

    assert await b.load([anna]) == {anna: (REVIEW,)}
    assert a.reader.take_unsaved() == {}  # dropped, not tried again and again
    assert any("no longer runs the tenant" in r.message for r in caplog.records)


async def test_a_stale_holder_cannot_forget_the_contact_books(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    anna = (await people(store, "anna"))["anna"]
    clock = VirtualClock()
    stale, held = await owners(store)
    a, b = contacts_keeper(store, clock, stale), contacts_keeper(store, clock, held)
    book = KeptBook((JUERGEN,), {"folder-1": (1, "https://graph/delta?$deltatoken=abc")})

    b.sync.unsaved_again({anna: book})
    await b.save()
    caplog.set_level(logging.WARNING)
    a.sync.unsaved_again({anna: None})  # node-a no longer follows Anna: it would forget her
    await a.save()

    assert await b.load([anna]) == {anna: book}
    assert a.sync.take_unsaved() == {}
    assert any("no longer runs the tenant" in r.message for r in caplog.records)
