"""The user directories API clients upload, kept in the store so that a restart keeps them.

A PBX or app uploads its users with `PUT /api/v1/connections/{name}/users`; the
ApiConnection holds them in memory (pbx/ knows nothing of the store). Without more, a
restarted m365pbx would match nobody on that connection, and show and report nothing for
those people, until every client uploaded again. So each connection's upload is kept in
`api_users` (design.md rule 4):

- saving: on each upload the saver writes what differs from what it last wrote, in one
  transaction, so a crash leaves the previous upload or the new one, never a mix. An upload
  that arrives meanwhile is saved right after; a failed write is tried again with backoff,
  and the stop saves whatever is still waiting;
- restoring: at start, before the first directory sync, the saved users go to
  `restore_users` (which fires no upload hook), so `list_users` answers with them at once.
  A client's next upload replaces them as before. A store that cannot be read leaves the
  directory empty until the client uploads, as it was without this.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from m365pbx.clock import Clock
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.base import PbxConnection, PbxUser
from m365pbx.pbx.sip.retry import Backoff
from m365pbx.service.saving import KeptState, save_when_woken
from m365pbx.store import ApiUserRecord, Repositories, Store

log = logging.getLogger(__name__)


class DirectoryKeeper:
    """Keeps one API connection's uploaded users in the store and hands them back at start."""

    def __init__(
        self,
        store: Store,
        connection: ApiConnection,
        clock: Clock,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self.store = store
        self.connection = connection
        self.clock = clock
        self.backoff = backoff or Backoff()
        self.restored = 0
        self.writes = 0
        self._connection_id: int | None = None
        self._missing = False
        # What the store holds for the connection; None: unknown, so the next save rewrites all.
        self._saved: dict[str, PbxUser] | None = None
        self._pending = False
        self._saving = False
        self._wake = asyncio.Event()

    @property
    def pending(self) -> bool:
        """Whether an upload has not been saved yet."""
        return self._pending

    def changed(self) -> None:
        """A client uploaded the connection's users: save them soon."""
        self._pending = True
        self._wake.set()

    async def _find_connection(self) -> int | None:
        if self._connection_id is None and not self._missing:
            async with self.store.transaction() as tx:
                row = await tx.pbx_connections.find(self.connection.name)
            if row is None:
                self._missing = True
                log.warning(
                    "PBX connection %s is not in the store: its uploaded users are not kept "
                    "across restarts",
                    self.connection.name,
                )
                return None
            self._connection_id = row.id
        return self._connection_id

    async def restore(self, *, newer: bool = False) -> int:
        """Hand the connection the users saved before the restart; return how many it took.

        `newer`: the saved users replace an upload to this node too (a node taking the
        tenant over: the PBX may have uploaded to the other node since), unless that upload
        is not saved yet (then it is the newest)."""
        if newer and (self._pending or self._saving):
            return 0  # an upload to this node not saved yet is newer than anything saved
        try:
            connection_id = await self._find_connection()
            if connection_id is None:
                return 0
            async with self.store.transaction() as tx:
                records = await tx.api_users.load(connection_id)
                stored = await tx.api_users.count(connection_id)
        except Exception as exc:
            # The connection works without them, as before: the client's next upload fills it.
            log.warning("%s: could not load the saved users: %s", self.connection.name, exc)
            return 0
        if newer and (self._pending or self._saving):
            return 0  # uploaded while reading
        users = [PbxUser(record.key, dict(record.fields)) for record in records]
        if stored == len(users):
            self._saved = {user.key: user for user in users}
        # else rows the key cannot read stay unknown: the next save rewrites the whole set.
        self.restored = self.connection.restore_users(users, newer=newer)
        log.info("%s: restored %d users uploaded before %s", self.connection.name,
                 self.restored, "this node took the tenant over" if newer else "the restart")
        return self.restored

    async def save(self) -> None:
        """Write the connection's users where they differ from the store; forget the rest."""
        self._pending = False
        self._saving = True
        try:
            await self._save()
        except BaseException:
            self._pending = True
            raise
        finally:
            self._saving = False

    async def _save(self) -> None:
        connection_id = await self._find_connection()
        if connection_id is None:
            return
        users = {user.key: user for user in await self.connection.list_users()}
        saved = self._saved
        if saved is None:
            gone: list[str] = []
            changed = list(users.values())
        else:
            gone = [key for key in saved if key not in users]
            changed = [user for key, user in users.items() if saved.get(key) != user]
            if not gone and not changed:
                return
        records = [ApiUserRecord(user.key, user.fields) for user in changed]

        async def work(tx: Repositories) -> None:
            if saved is None:
                await tx.api_users.delete(connection_id)
            await tx.api_users.delete(connection_id, gone)
            await tx.api_users.save(connection_id, records, now=self.clock.now())

        await self.store.write(work, what=f"the users uploaded to {self.connection.name}")
        self._saved = users
        self.writes += 1

    async def run(self) -> None:
        """Save each upload until cancelled; a failed write is tried again with backoff."""
        await save_when_woken(self._wake, self.save, backoff=self.backoff,
                              owner=self.connection.name,
                              what="the uploaded users")


class StoredApiConnection(ApiConnection):
    """An ApiConnection whose uploaded users are kept in the store across restarts."""

    def __init__(self, name: str, store: Store, clock: Clock) -> None:
        super().__init__(name, clock=clock)
        self.keeper = DirectoryKeeper(store, self, clock)
        self.on_users(lambda _users: self.keeper.changed())
        self.kept = KeptState(self.keeper, owner=name, what="the uploaded users")

    async def start(self) -> None:
        """Take back the saved users, then start the connection and the saver."""
        if self.kept.running:
            return
        # Before the service's first directory sync asks for the users.
        await self.kept.restore_once()
        await super().start()
        self.kept.run()

    async def stop(self) -> None:
        """Stop the connection and the saver, then save an upload still waiting."""
        try:
            await super().stop()
        finally:
            await self.kept.stop(save=self.keeper.pending)


async def reload_directories(connections: Iterable[PbxConnection]) -> None:
    """Take the saved directories of these API connections again, over any upload to this
    node: a node taking a tenant over, whose PBXs may have uploaded to another node since."""
    for connection in connections:
        if isinstance(connection, StoredApiConnection):
            await connection.keeper.restore(newer=True)
