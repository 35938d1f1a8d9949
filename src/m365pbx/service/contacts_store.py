"""The contacts sync's books in the store (`contact_books`), so that a restart answers
searches and caller lookups from each person's own contacts at once, and then reads only
what changed meanwhile, instead of every mailbox in full (minutes for 50,000 people).

Saving: the sync says when books changed; the keeper waits `save_delay` to gather a
round's burst and writes what changed, in chunks (short write locks on SQLite); the kept
copy of a person no longer followed is deleted in the same way. A crash loses at most that
delay, which the first read after the restart repairs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Collection
from datetime import datetime

from m365pbx.clock import Clock
from m365pbx.core.contacts.packed import FORMAT
from m365pbx.pbx.sip.retry import Backoff
from m365pbx.service.leases import Writes
from m365pbx.service.saving import save_when_woken
from m365pbx.store import FencedOut, Repositories, Store, StoredBook
from m365pbx.sync.contacts import ContactsSync, KeptBook

log = logging.getLogger(__name__)

SAVE_DELAY = 1.0
CHUNK = 500  # people per transaction


class ContactsKeeper:
    """Keeps one tenant's contact books in the store and hands them back at start."""

    def __init__(self, store: Store, sync: ContactsSync, clock: Clock, *,
                 save_delay: float = SAVE_DELAY, backoff: Backoff | None = None,
                 writes: Writes | None = None) -> None:
        self.store = store
        self.writes_to: Writes = writes or store  # an Ownership fences them (several nodes)
        self.sync = sync
        self.clock = clock
        self.save_delay = save_delay
        self.backoff = backoff or Backoff()
        self.writes = 0
        self._wake = asyncio.Event()
        sync.kept = self

    def changed(self) -> None:
        """The sync's books changed: save them soon."""
        self._wake.set()

    async def load(self, person_ids: Collection[int]) -> dict[int, KeptBook]:
        """The kept books of these people (those kept in another format are left out)."""
        async with self.store.transaction() as tx:
            stored = await tx.contact_books.load(person_ids)
        return {person_id: KeptBook(book.records, book.folders)
                for person_id, book in stored.items() if book.format == FORMAT}

    async def save(self) -> None:
        """Write the books that changed since the last save, and forget those of leavers."""
        unsaved = self.sync.take_unsaved()
        items = list(unsaved.items())
        now = self.clock.now()
        try:
            for start in range(0, len(items), CHUNK):
                chunk = items[start:start + CHUNK]
                books = {person_id: StoredBook(kept.book, kept.folders, FORMAT)
                         for person_id, kept in chunk if kept is not None}
                gone = [person_id for person_id, kept in chunk if kept is None]
                await self.writes_to.write(
                    functools.partial(_save, books=books, gone=gone, now=now),
                    what=f"the contacts of tenant {self.sync.tenant}")
                for person_id, _ in chunk:
                    del unsaved[person_id]
                self.writes += 1
        except FencedOut:
            # Another node runs the tenant now and saves its own reading; ours is stale.
            log.warning("tenant %s: not saving what changed for %d people: this node no "
                        "longer runs the tenant", self.sync.tenant, len(unsaved))
            unsaved.clear()
        finally:
            if unsaved:
                self.sync.unsaved_again(unsaved)

    async def run(self) -> None:
        """Save changes until cancelled."""
        await save_when_woken(self._wake, self.save, backoff=self.backoff,
                              owner=f"tenant {self.sync.tenant}",
                              what="the contacts", delay=self.save_delay)


async def forget_contacts(store: Store, tenant: str) -> None:
    """Delete the kept contacts of a tenant whose contacts are not kept current here (no
    connection with contacts on, or no credential may read them): nothing stays on disk
    that the service does not follow."""
    async def work(tx: Repositories) -> int:
        return await tx.contact_books.delete_for_tenant(tenant)

    removed = await store.write(work, what=f"the kept contacts of tenant {tenant}")
    if removed:
        log.info("kept contacts of %d people of tenant %s deleted: contacts are not followed",
                 removed, tenant)


async def _save(tx: Repositories, *, books: dict[int, StoredBook], gone: list[int],
                now: datetime) -> None:
    await tx.contact_books.delete(gone)
    await tx.contact_books.save(books, now=now)
