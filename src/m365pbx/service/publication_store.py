"""SIP publication ETags in the store, so a restarted m365pbx takes its publications over.

A presence server aggregates every live publication of a person: after a crash, a fresh
PUBLISH would add a second publication next to the old one (whose note may win) until the
old one expires (docs/sip.md). So each SIP connection's publications (PBX user, ETag,
expiry) are kept in `sip_publications` (design.md rule 4):

- saving: the connection says whose publication changed; the saver gathers for
  `save_delay` (50 ms: refreshes come in waves) and writes those people's rows, those
  that differ from what it last wrote. Every `save_every` it compares everyone anyway
  (expired ones go). Each PUBLISH's answer brings a new ETag (RFC 3903 §4.1), so a crash
  (`kill -9`) between an answer and its write loses that ETag: after the restart the old
  one gets 412 and the person's previous publication, which nobody can modify or remove
  without its ETag, lives until it expires. Writing at once (`save_delay` 50 ms, it
  was 1 s) keeps that window to the gathering plus one write;
- restoring: at start, before the connection sends anything, the unexpired ones go to
  `restore_publication`, so the first PUBLISH modifies the old publication (SIP-If-Match);
  412 (the server lost it) makes the connection publish afresh. `orphan_grace` later the
  ones nobody claimed (the person is online now) are withdrawn;
- stopping: the connection withdraws its publications, then what the server still holds
  (everything, when it did not answer) is saved.

On several nodes (service/leased_sip.py) every write goes through the tenant's lease
(`Ownership.write`, fenced by its epoch), so a paused old holder cannot overwrite the
ETags of the node that took the publications over.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import datetime

from m365pbx.clock import Clock
from m365pbx.pbx.base import PbxUser
from m365pbx.pbx.sip.addressing import UnaddressableUser
from m365pbx.pbx.sip.connection import HeldPublication, SipConnection
from m365pbx.pbx.sip.options import SipOptions
from m365pbx.pbx.sip.retry import Backoff
from m365pbx.service.leases import Writes
from m365pbx.service.saving import KeptState, save_when_woken
from m365pbx.store import Repositories, SipPublicationRecord, Store

log = logging.getLogger(__name__)

SAVE_DELAY = 0.05
SAVE_EVERY = 60.0
# As long as a restored Teams session waits for its person (sync.pbx_to_teams.restore).
ORPHAN_GRACE = 120.0
CHUNK = 500  # publications per transaction: short write locks on SQLite


class PublicationKeeper:
    """Keeps one SIP connection's publications in the store and hands them back at start."""

    def __init__(
        self,
        store: Store,
        connection: SipConnection,
        clock: Clock,
        *,
        save_delay: float = SAVE_DELAY,
        save_every: float = SAVE_EVERY,
        orphan_grace: float = ORPHAN_GRACE,
        backoff: Backoff | None = None,
        writer: Writes | None = None,
    ) -> None:
        self.store = store
        # Several nodes: the tenant's lease, so every write is fenced by its epoch.
        self.fenced_by: Writes | None = writer
        self.connection = connection
        self.clock = clock
        self.save_delay = save_delay
        self.save_every = save_every
        self.orphan_grace = orphan_grace
        self.backoff = backoff or Backoff()
        self.restored = 0
        self.writes = 0
        self._connection_id: int | None = None
        self._missing = False
        # What the store holds for the connection; None: unknown (nothing loaded yet).
        self._saved: dict[str, HeldPublication] | None = None
        # Whose publications changed since the last save; None: compare everyone.
        self._dirty: set[str] | None = None
        self._wake = asyncio.Event()

    @property
    def writer(self) -> Writes:
        """Where the writes go: the lease's fenced writes, else the store."""
        return self.fenced_by or self.store

    def changed(self, key: str | None = None) -> None:
        """A PBX user's publication changed (None: maybe anyone's): save it soon."""
        if key is None:
            self._dirty = None
        elif self._dirty is not None:
            self._dirty.add(key)
        self._wake.set()

    async def _find_connection(self) -> int | None:
        if self._connection_id is None and not self._missing:
            async with self.store.transaction() as tx:
                row = await tx.pbx_connections.find(self.connection.name)
            if row is None:
                self._missing = True
                log.warning(
                    "PBX connection %s is not in the store: its SIP publications cannot be "
                    "taken over after a restart",
                    self.connection.name,
                )
                return None
            self._connection_id = row.id
        return self._connection_id

    async def restore(self) -> int:
        """Hand the connection its saved, unexpired publications; return how many it took."""
        now = self.clock.now()
        try:
            connection_id = await self._find_connection()
            if connection_id is None:
                return 0
            records = await self.writer.write(
                functools.partial(_fresh_publications, connection_id=connection_id, now=now),
                what=f"the SIP publications of {self.connection.name}")
        except Exception as exc:
            # The connection works without them: old publications just live until they expire.
            log.warning("%s: could not load the saved SIP publications: %s",
                        self.connection.name, exc)
            return 0
        saved: dict[str, HeldPublication] = {}
        for record in records:
            user = PbxUser(record.key, dict(record.user_fields))
            saved[record.key] = HeldPublication(user, record.etag, record.expires_at)
            try:
                self.connection.restore_publication(user, record.etag, record.expires_at)
            except UnaddressableUser as exc:
                log.warning("%s: saved publication not taken over: %s", self.connection.name, exc)
                continue
            self.restored += 1
        self._saved = saved
        log.info("%s: took over %d saved SIP publications", self.connection.name, self.restored)
        return self.restored

    def forget(self) -> None:
        """Forget what was restored and saved (the connection handed its publications on)."""
        self._saved = None
        self.restored = 0

    async def save(self) -> None:
        """Write the publications that changed since the last save; forget those gone."""
        connection_id = await self._find_connection()
        if connection_id is None:
            return
        now = self.clock.now()
        name = self.connection.name
        dirty, self._dirty = self._dirty, set()
        if self._saved is None:
            await self.writer.write(lambda tx: tx.sip_publications.delete(connection_id),
                                   what=f"the SIP publications of {name}")
            self._saved, dirty = {}, None
        saved = self._saved
        try:
            if dirty:  # only the people whose publications changed
                held = {key: item for key in dirty
                        if (item := self.connection.publication_of(key)) is not None}
                gone = [key for key in dirty if key in saved and key not in held]
            else:  # a look at everyone (every `save_every`, at the first save, at stop)
                held = self.connection.publications()
                gone = [key for key in saved if key not in held]
            changed = [item for key, item in held.items() if saved.get(key) != item]
            await self._write(connection_id, gone, changed, now)
        except BaseException:
            # Not written: those people are written with the next save.
            self._dirty = None if dirty is None or self._dirty is None else self._dirty | dirty
            raise

    async def _write(self, connection_id: int, gone: list[str],
                     changed: list[HeldPublication], now: datetime) -> None:
        name = self.connection.name
        saved = self._saved
        assert saved is not None
        for start in range(0, len(gone), CHUNK):
            chunk = gone[start : start + CHUNK]
            await self.writer.write(
                functools.partial(_delete_publications, connection_id=connection_id, keys=chunk),
                what=f"the SIP publications of {name}")
            for key in chunk:
                del saved[key]
            self.writes += 1
        for start in range(0, len(changed), CHUNK):
            items = changed[start : start + CHUNK]
            records = [
                SipPublicationRecord(item.user.key, item.etag, item.expires_at, item.user.fields)
                for item in items
            ]
            await self.writer.write(
                functools.partial(_save_publications, connection_id=connection_id,
                                  records=records, now=now),
                what=f"the SIP publications of {name}")
            saved.update((item.user.key, item) for item in items)
            self.writes += 1

    async def run(self) -> None:
        """Save changes until cancelled; withdraw unclaimed restored ones after the grace."""
        async with asyncio.TaskGroup() as group:
            if self.restored:
                group.create_task(self._settle_later())
            group.create_task(self._save_changes())

    async def _settle_later(self) -> None:
        await self.clock.sleep(self.orphan_grace)
        try:
            await self.connection.settle_restored()
        except Exception:
            log.exception("%s: could not withdraw unclaimed publications", self.connection.name)

    async def _save_changes(self) -> None:
        await save_when_woken(self._wake, self.save, backoff=self.backoff,
                              owner=self.connection.name,
                              what="the SIP publications",
                              delay=self.save_delay, every=self.save_every)


async def _fresh_publications(tx: Repositories, *, connection_id: int,
                              now: datetime) -> list[SipPublicationRecord]:
    await tx.sip_publications.delete_expired(connection_id, now=now)
    return await tx.sip_publications.load(connection_id, now=now)


async def _delete_publications(tx: Repositories, *, connection_id: int, keys: list[str]) -> None:
    await tx.sip_publications.delete(connection_id, keys)


async def _save_publications(tx: Repositories, *, connection_id: int,
                             records: list[SipPublicationRecord], now: datetime) -> None:
    await tx.sip_publications.save(connection_id, records, now=now)


class StoredSipConnection(SipConnection):
    """A SipConnection whose publications are kept in the store across restarts."""

    def __init__(self, name: str, options: SipOptions, store: Store, clock: Clock) -> None:
        super().__init__(name, options, now=clock.now)
        self.keeper = PublicationKeeper(store, self, clock)
        self.on_publications_changed = self.keeper.changed
        self.kept = KeptState(self.keeper, owner=name, what="the SIP publications")

    async def start(self) -> None:
        """Take over the saved publications, then start the connection and the saver."""
        if self.kept.running:
            return
        # Before the first PUBLISH, or it would create a second publication.
        await self.kept.restore_once()
        await super().start()
        self.kept.run()

    async def stop(self) -> None:
        """Stop the connection (withdrawing what it can), then save what the server holds."""
        was_running = self.kept.running
        try:
            await super().stop()
        finally:
            await self.kept.stop(save=was_running)
