"""The presence API on every node, Teams → PBX (docs/cluster.md): the node running a tenant
writes its people as its presence API shows them into `api_shown`; every other node reads
what changed since it last looked and shows the same, in its GET answers and WebSocket
streams, without running the tenant.

Only what changed is written, in one transaction fenced by the holder's lease, which
`pg_notify`s the tenant; a person no longer followed gets a tombstone. A node that takes
a tenant over first marks every stored person it does not follow as gone; a node that
loses or does not run a tenant reads all its stored people again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.api.view import PersonPresence
from m365pbx.pbx.base import PbxUser
from m365pbx.service.api_handoff import ApiTenant
from m365pbx.service.api_rows import presence_from, presence_json
from m365pbx.service.presence_view import HubPresenceView
from m365pbx.store import FencedOut, Repositories, ShownRow, Store, shown_version

__all__ = ["ShownSharing"]

log = logging.getLogger(__name__)

Slot = tuple[str, str]  # (connection, key)


class ShownSharing:
    """Writes the held tenants' shown people; shows the other tenants' people (one per node)."""

    def __init__(self, store: Store, view: HubPresenceView, *,
                 tenants: Callable[[], Iterable[ApiTenant]],
                 connections_of: Mapping[str, set[str]],
                 api_connections: Mapping[str, ApiConnection]) -> None:
        self.store = store
        self.view = view
        self.tenants = tenants
        self.connections_of = connections_of  # tenant -> the names of all its connections
        self.api_connections = api_connections
        self.counters: Counter[str] = Counter()
        self.dirty: set[Slot] = set()
        # Holder: what was written under which epoch, and its write counter.
        self._written: dict[str, tuple[int, dict[Slot, PersonPresence]]] = {}
        self._counter: dict[str, int] = {}
        # Other nodes' tenants: the highest version read, and the people shown.
        self._seen: dict[str, int] = {}
        self._remote: dict[str, set[Slot]] = {}

    def follows(self, tenant: str) -> bool:
        """Whether the people the tenant's holder shows have been read here."""
        return tenant in self._remote

    def watches(self, connection: str, key: str) -> bool:
        """Whether the node running the connection's tenant shows (so follows) this key."""
        return any((connection, key) in slots for slots in self._remote.values())

    async def round(self, *, full: bool, publish: bool = True, follow: bool = True) -> None:
        """Write what changed in the held tenants (everything if `full`), read the others'."""
        dirty, self.dirty = (self.dirty, set()) if publish or full else (set(), self.dirty)
        for tenant in list(self.tenants()):
            if tenant.runs():
                self._stop_following(tenant.name)
                lease = tenant.ownership.lease
                if (publish or full) and lease is not None and tenant.ready():
                    await self._publish(tenant, lease.epoch, None if full else dirty)
            else:
                self._written.pop(tenant.name, None)
                if follow or full or tenant.name not in self._remote:
                    await self._follow(tenant.name)

    async def _publish(self, tenant: ApiTenant, epoch: int, dirty: set[Slot] | None) -> None:
        ours = self.connections_of.get(tenant.name, set())
        written = self._written.get(tenant.name)
        if dirty is not None and written is not None and written[0] == epoch:
            await self._publish_changed(tenant, ours, epoch, written[1], dirty)
            return
        mirrored = self.view.mirrored()
        current = {(p.connection, p.key): p for p in self.view.people()
                   if p.connection in ours and (p.connection, p.key) not in mirrored}
        if written is None or written[0] != epoch:
            # Taken over (or first): whatever is stored and not followed here is gone.
            async with self.store.transaction() as tx:
                stored = await tx.api_shown.followed(tenant.name)
            before: dict[Slot, PersonPresence] = {}
            gone = stored - current.keys()
        else:
            before, gone = written[1], written[1].keys() - current.keys()
        rows: list[tuple[str, str, str | None]] = [
            (c, k, presence_json(p)) for (c, k), p in current.items() if before.get((c, k)) != p]
        rows += [(c, k, None) for c, k in gone]
        if not await self._write(tenant, epoch, rows):
            return
        kept = {s: p for s, p in current.items() if s not in gone}
        self._written[tenant.name] = (epoch, kept)

    async def _publish_changed(self, tenant: ApiTenant, ours: set[str], epoch: int,
                               before: dict[Slot, PersonPresence], dirty: set[Slot]) -> None:
        """Write only the changed people (the rounds between two full ones): each round
        reads its few dirty slots instead of copying everyone (50,000 at a time). One who
        left stays as written until the full round notices and writes the tombstone."""
        changed: dict[Slot, PersonPresence] = {}
        for slot in dirty:
            connection, key = slot
            if connection not in ours or self.view.is_mirrored(connection, key):
                continue
            shown = self.view.get(connection, key)
            if shown is not None and before.get(slot) != shown:
                changed[slot] = shown
        rows: list[tuple[str, str, str | None]] = [
            (c, k, presence_json(p)) for (c, k), p in changed.items()]
        if await self._write(tenant, epoch, rows):
            before.update(changed)

    async def _write(self, tenant: ApiTenant, epoch: int,
                     rows: list[tuple[str, str, str | None]]) -> bool:
        """Write the rows under the next version, fenced by the lease; False if fenced out."""
        if not rows:
            return True
        counter = self._counter.get(tenant.name, 0) + 1
        version = shown_version(epoch, counter)

        async def work(tx: Repositories) -> int:
            return await tx.api_shown.put(tenant.name, version, rows)

        try:
            await tenant.ownership.write(work, what=f"shown presence of {tenant.name}")
        except FencedOut:
            self._written.pop(tenant.name, None)
            return False
        self._counter[tenant.name] = counter
        self.counters["published"] += len(rows)
        return True

    async def _follow(self, tenant: str) -> None:
        async with self.store.transaction() as tx:
            rows = await tx.api_shown.since(tenant, self._seen.get(tenant, 0))
        remote = self._remote.setdefault(tenant, set())
        for row in rows:
            await self._show(row, remote)
            self._seen[tenant] = row.version

    async def _show(self, row: ShownRow, remote: set[Slot]) -> None:
        slot = (row.connection, row.key)
        if row.body is None:
            remote.discard(slot)
            self.view.unmirror(*slot)
            self.counters["applied"] += 1
            return
        try:
            person = presence_from(row.connection, row.key, row.body)
        except (ValueError, KeyError, TypeError) as exc:
            self.counters["unreadable"] += 1
            log.error("the shown presence of %s on %s written by another node cannot be read: "
                      "%s", row.key, row.connection, exc)
            return
        remote.add(slot)
        self.view.mirror(person)
        connection = self.api_connections.get(row.connection)
        if connection is not None and person.pbx is not None:
            # The connection's own record of what is shown (its on_shown listeners).
            await connection.set_presence(PbxUser(row.key, {}), person.pbx.presence,
                                          person.pbx.note)
        self.counters["applied"] += 1

    def _stop_following(self, tenant: str) -> None:
        """This node runs the tenant now: its hub shows the people, not the other node's rows."""
        remote = self._remote.pop(tenant, None)
        self._seen.pop(tenant, None)
        if remote:
            for slot in remote:
                self.view.unmirror(*slot)
            self.view.refresh()
