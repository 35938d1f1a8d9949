"""The calendar reader's blocks in the store (`calendar_blocks`), so a restart rebuilds every
meeting's timers at once instead of after the first round of reads (minutes for 50,000
people, longer when Graph throttles or is down at start-up).

Saving: the reader says when blocks changed; the keeper waits `save_delay` to gather a
round's burst and writes what changed, in chunks (short write locks on SQLite). A crash
loses at most that delay, which the first read after the restart repairs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Collection
from datetime import datetime

from m365pbx.clock import Clock
from m365pbx.core.policy.state import CalendarBlock
from m365pbx.core.presence import lookup_pbx_presence
from m365pbx.pbx.sip.retry import Backoff
from m365pbx.service.leases import Writes
from m365pbx.service.saving import save_when_woken
from m365pbx.store import FencedOut, Repositories, Store, StoredBlock
from m365pbx.sync.calendar import CalendarReader

log = logging.getLogger(__name__)

SAVE_DELAY = 1.0
CHUNK = 500  # people per transaction


def stored_blocks(blocks: tuple[CalendarBlock, ...]) -> list[StoredBlock]:
    """Blocks as the store keeps them."""
    return [(block.presence.value, block.start, block.end, block.subject) for block in blocks]


def _block(item: StoredBlock) -> CalendarBlock | None:
    presence = lookup_pbx_presence(item[0])
    return None if presence is None else CalendarBlock(presence, item[1], item[2], item[3])


class CalendarKeeper:
    """Keeps one tenant's calendar blocks in the store and hands them back at start."""

    def __init__(self, store: Store, reader: CalendarReader, clock: Clock, *,
                 save_delay: float = SAVE_DELAY, backoff: Backoff | None = None,
                 writes: Writes | None = None) -> None:
        self.store = store
        self.writes_to: Writes = writes or store  # an Ownership fences them (several nodes)
        self.reader = reader
        self.clock = clock
        self.save_delay = save_delay
        self.backoff = backoff or Backoff()
        self.writes = 0
        self._wake = asyncio.Event()
        reader.kept = self

    def changed(self) -> None:
        """The reader's blocks changed: save them soon."""
        self._wake.set()

    async def load(self, person_ids: Collection[int]) -> dict[int, tuple[CalendarBlock, ...]]:
        """The kept blocks of these people."""
        async with self.store.transaction() as tx:
            stored = await tx.calendar_blocks.load(person_ids)
        return {person_id: tuple(block for item in items if (block := _block(item)) is not None)
                for person_id, items in stored.items()}

    async def save(self) -> None:
        """Write the blocks that changed since the last save."""
        unsaved = self.reader.take_unsaved()
        items = list(unsaved.items())
        now = self.clock.now()
        try:
            for start in range(0, len(items), CHUNK):
                chunk = {person_id: stored_blocks(blocks)
                         for person_id, blocks in items[start:start + CHUNK]}
                await self.writes_to.write(
                    functools.partial(_save, blocks=chunk, now=now),
                    what=f"the calendar blocks of tenant {self.reader.tenant}")
                for person_id, _ in items[start:start + CHUNK]:
                    del unsaved[person_id]
                self.writes += 1
        except FencedOut:
            # Another node runs the tenant now and saves its own reading; ours is stale.
            log.warning("tenant %s: not saving what changed for %d people: this node no "
                        "longer runs the tenant", self.reader.tenant, len(unsaved))
            unsaved.clear()
        finally:
            if unsaved:
                self.reader.unsaved_again(unsaved)

    async def run(self) -> None:
        """Save changes until cancelled."""
        await save_when_woken(self._wake, self.save, backoff=self.backoff,
                              owner=f"tenant {self.reader.tenant}",
                              what="the calendar blocks", delay=self.save_delay)


async def _save(tx: Repositories, *, blocks: dict[int, list[StoredBlock]],
                now: datetime) -> None:
    await tx.calendar_blocks.save(blocks, now=now)
