"""The presence API on every node, PBX → Teams (docs/cluster.md): events and directories a
PBX sends to a node that does not run the connection's tenant are handed to the node that
does through PostgreSQL, as webhook notifications are (service/handoff.py).

The receiving node writes them into `api_handoffs` and `pg_notify`s the tenant in the same
transaction before it answers (a database out of reach: 503, the PBX sends again). The
holder takes its tenant's rows oldest first, fenced by its lease, only as many events as
its connection's buffer takes now, and submits them as if they had been posted to it.
Rows nobody took within the lifetime are dropped and logged: a line state that old would
show a call that has probably ended (docs/cluster.md "Expiry").
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from m365pbx.clock import Clock
from m365pbx.pbx.api.connection import ApiConnection, ConnectionUnavailable
from m365pbx.pbx.base import PbxEvent, PbxUser
from m365pbx.service.api_rows import events_from, events_json, users_from, users_json
from m365pbx.service.leases import Ownership
from m365pbx.store import ApiHandedOff, FencedOut, Repositories, Store

__all__ = ["USERS_LIFETIME", "ApiHandoff", "ApiTenant", "ConnectionRelay"]

log = logging.getLogger(__name__)

ANSWER_WITHIN = 5.0  # seconds for the handing write before the PBX gets a 503
TAKE = 100  # rows per transaction
USERS_LIFETIME = 24 * 3600.0
"""A directory upload replaces the whole directory and may not come again for days: it
waits for a holder this long, unlike events."""


@dataclass
class ApiTenant:
    """What the relay needs of one tenant: its lease, whether this node runs it and is ready
    (its people matched), and its API connections."""

    name: str
    ownership: Ownership
    runs: Callable[[], bool]
    ready: Callable[[], bool]
    connections: dict[str, ApiConnection]


class ConnectionRelay:
    """One API connection's `ApiRelay`: hands its input to the node running its tenant."""

    def __init__(self, handoff: ApiHandoff, tenant: ApiTenant, connection: str,
                 watches: Callable[[str, str], bool], follows: Callable[[str], bool]) -> None:
        self.handoff = handoff
        self.tenant = tenant
        self.connection = connection
        self._watches = watches
        self._follows = follows

    def elsewhere(self) -> bool:
        """Whether another node runs the tenant now (or nobody yet: the next holder takes)."""
        return not self.tenant.runs()

    def watches(self, key: str) -> bool:
        """Whether the node running the tenant shows (so follows) this key."""
        return self._watches(self.connection, key)

    def waiting(self) -> str | None:
        """Why keys cannot be told yet: a node that has just started (or taken the tenant
        over) would otherwise refuse the people it is about to follow as unknown."""
        name = self.tenant.name
        if self.elsewhere():
            if not self._follows(name):
                return (f"this node has not read yet whom the node running tenant {name!r} "
                        "follows; send again in a moment")
        elif not self.tenant.ready():
            return (f"this node has just taken tenant {name!r} over and has not matched its "
                    "people yet; send again in a moment")
        return None

    async def events(self, events: list[PbxEvent]) -> None:
        """Hand events to the holder; ConnectionUnavailable if the database does not take them."""
        await self.handoff.hand(self.tenant.name, self.connection, "events",
                                events_json(events), len(events))

    async def users(self, users: list[PbxUser]) -> None:
        """Hand a directory upload to the holder; ConnectionUnavailable as above."""
        await self.handoff.hand(self.tenant.name, self.connection, "users", users_json(users),
                                len(users))


class ApiHandoff:
    """The receiving side (`hand`) and the holder's drain (one per node)."""

    def __init__(self, store: Store, node: str, clock: Clock, *, lifetime: float,
                 tenants: Callable[[], Iterable[ApiTenant]]) -> None:
        self.store = store
        self.node = node
        self.clock = clock
        self.lifetime = lifetime
        self.tenants = tenants
        self.counters: Counter[str] = Counter()
        self.backlog: dict[str, int] = {}

    async def hand(self, tenant: str, connection: str, kind: str, body: str,
                   items: int) -> None:
        """Write one request's events or users for the tenant's holder, or refuse."""
        lifetime = self.lifetime if kind == "events" else max(self.lifetime, USERS_LIFETIME)

        async def work(tx: Repositories) -> None:
            await tx.api_handoffs.add(tenant, connection, kind, body, items=items,
                                      received_by=self.node, lifetime=lifetime)

        try:
            async with asyncio.timeout(ANSWER_WITHIN):
                await self.store.write(work, what=f"{kind} for the node running {tenant}")
        except Exception as exc:
            self.counters["failed"] += 1
            log.error("cannot hand %d %s of PBX connection %s to the node running tenant %s "
                      "(answered 503, the PBX sends again): %s: %s", items, kind, connection,
                      tenant, type(exc).__name__, exc)
            raise ConnectionUnavailable(
                f"cannot hand {kind} to the node running tenant {tenant!r}; retry later"
            ) from None
        self.counters[f"handed_off_{kind}"] += items

    async def drain(self) -> None:
        """Take the rows of every tenant this node runs and is ready for; the backlog."""
        for tenant in list(self.tenants()):
            if tenant.ownership.lease is not None and tenant.runs():
                await self._drain(tenant)
        async with self.store.transaction() as tx:
            self.backlog = await tx.api_handoffs.backlog()

    @staticmethod
    def _room(tenant: ApiTenant) -> int:
        # Events wait until the holder follows its people (a directory does not).
        if not tenant.ready():
            return 0
        return min((c.room() for c in tenant.connections.values()), default=0)

    async def _drain(self, tenant: ApiTenant) -> None:
        room = self._room(tenant)

        async def take(tx: Repositories) -> tuple[list[ApiHandedOff], list[ApiHandedOff]]:
            return (await tx.api_handoffs.drop_expired(tenant.name),
                    await tx.api_handoffs.take(tenant.name, limit=TAKE, room=room))

        while True:
            try:
                expired, taken = await tenant.ownership.write(
                    take, what=f"presence API input handed over for tenant {tenant.name}")
            except FencedOut:
                return  # no longer ours: the new holder takes them
            for row in expired:
                self.counters[f"expired_{row.kind}"] += row.items
                log.warning("%d %s sent to %s's presence API on node %s expired before "
                            "this node took them (cluster.handoff_lifetime) and are dropped: "
                            "too old to apply", row.items, row.kind, row.connection,
                            row.received_by)
            for row in taken:
                self._apply(tenant, row)
            if len(taken) < TAKE:
                return
            room = self._room(tenant)

    def _apply(self, tenant: ApiTenant, row: ApiHandedOff) -> None:
        connection = tenant.connections.get(row.connection)
        try:
            if connection is None:
                raise LookupError(f"no API connection {row.connection!r} on this node")
            if row.kind == "users":
                connection.replace_users(users_from(row.body))
                self.counters["taken_users"] += row.items
                return
            events = events_from(row.body)
            followed = [e for e in events if connection.watches(e.key)]
            connection.submit(followed)
        except (LookupError, ValueError, KeyError, ConnectionUnavailable) as exc:
            self.counters[f"lost_{row.kind}"] += row.items
            log.error("%d %s handed over from node %s for %s cannot be applied: %s",
                      row.items, row.kind, row.received_by, row.connection, exc)
            return
        self.counters["taken_events"] += len(followed)
        if len(followed) < len(events):
            # The holder stopped following them between the answer and now.
            self.counters["unfollowed_events"] += len(events) - len(followed)
