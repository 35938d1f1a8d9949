"""The presence API on every node (docs/cluster.md): one loop per node that takes the input
other nodes handed over (service/api_handoff.py) and shares what the API shows
(service/api_shown.py), woken by NOTIFY on one pooled listening connection, by changes of
this node's view, and every few seconds anyway (a lost NOTIFY, a dropped connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from m365pbx.clock import Clock
from m365pbx.core.status import PartState, PartStatus
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.service.api_handoff import ApiHandoff, ApiTenant, ConnectionRelay
from m365pbx.service.api_shown import ShownSharing
from m365pbx.service.leases import Ownership
from m365pbx.service.pg_listen import Listener, listen
from m365pbx.service.presence_view import HubPresenceView
from m365pbx.store import API_CHANNEL, SHOWN_CHANNEL, Store

__all__ = ["ApiEverywhere"]

log = logging.getLogger(__name__)

ROUND_EVERY = 5.0  # seconds between rounds without a wake-up; also between full writes
GATHER = 0.05  # seconds a wake-up waits for more changes to write them together
FIX = ("Check this node's connection to the PostgreSQL server; PBXs get a 503 for what "
       "cannot be handed over and send it again")


class ApiEverywhere:
    """The node's presence API for tenants another node runs, and its share of its own."""

    def __init__(self, store: Store, node: str, clock: Clock, view: HubPresenceView, *,
                 lifetime: float, connections_of: Mapping[str, set[str]],
                 api_connections: Mapping[str, ApiConnection]) -> None:
        self.store = store
        self.clock = clock
        self.view = view
        self.tenants: list[ApiTenant] = []
        self.handoff = ApiHandoff(store, node, clock, lifetime=lifetime,
                                  tenants=lambda: self.tenants)
        self.shown = ShownSharing(store, view, tenants=lambda: self.tenants,
                                  connections_of=connections_of,
                                  api_connections=api_connections)
        self.error: str | None = None
        self.listen_error: str | None = None
        self.since: datetime | None = None
        self.listening = False
        self._wake = asyncio.Event()
        self._wanted: set[str] = set()  # what to do at the next round: drain, publish, follow
        self._full_at = float("-inf")

    def add_tenant(self, name: str, ownership: Ownership, *, runs: Callable[[], bool],
                   ready: Callable[[], bool], connections: dict[str, ApiConnection]) -> None:
        """Follow a tenant; its API connections hand their input on while another node
        runs it (their `relay`)."""
        tenant = ApiTenant(name, ownership, runs=runs, ready=ready, connections=connections)
        self.tenants.append(tenant)
        for connection_name, connection in connections.items():
            connection.relay = ConnectionRelay(self.handoff, tenant, connection_name,
                                               self.shown.watches, self.shown.follows)

    def wake(self, *, full: bool = False) -> None:
        """Run a round now (a NOTIFY, a takeover, new people); `full`: write everyone."""
        if full:
            self._full_at = float("-inf")
        self._want("drain", "publish", "follow")

    def _want(self, *what: str) -> None:
        self._wanted.update(what)
        self._wake.set()

    async def run(self) -> None:
        """Take, write and read until cancelled."""
        feed = asyncio.ensure_future(self._follow_view())
        listener = None
        try:
            while True:
                if listener is None or listener[1].is_closed():
                    listener = await self._listen(listener)
                await self.round()
                try:
                    async with asyncio.timeout(ROUND_EVERY):
                        await self._wake.wait()
                except TimeoutError:
                    self._wanted.update(("drain", "publish", "follow"))
                await asyncio.sleep(GATHER)
                self._wake.clear()
        finally:
            feed.cancel()
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener[0].close()

    async def _follow_view(self) -> None:
        async for person in self.view.changes():
            self.shown.dirty.add((person.connection, person.key))
            self._want("publish")

    async def round(self) -> None:
        """One round: take handed input, write the held tenants' changes, read the others'."""
        full = time.monotonic() - self._full_at >= ROUND_EVERY
        wanted, self._wanted = self._wanted, set()
        try:
            if "drain" in wanted or full:
                await self.handoff.drain()
            await self.shown.round(full=full, publish="publish" in wanted,
                                   follow="follow" in wanted)
        except Exception as exc:
            self._wanted |= wanted  # tried again at the next round
            error = f"cannot share the presence API with other nodes: {type(exc).__name__}: {exc}"
            if error != self.error:
                log.error("%s", error)
                self.since = self.clock.now()
            self.error = error
            return
        if full:
            self._full_at = time.monotonic()
        if self.error is not None:
            log.info("the presence API is shared with other nodes again")
            self.error, self.since = None, self.clock.now()

    async def _listen(self, old: Listener | None) -> Listener | None:
        """A pooled connection LISTENing on both channels, and its asyncpg connection."""
        self.listening = False
        try:
            found = await listen(self.store, {API_CHANNEL: lambda: self._want("drain"),
                                              SHOWN_CHANNEL: lambda: self._want("follow")},
                                 old)
        except Exception as exc:
            error = (f"cannot LISTEN for the other nodes' presence API changes (reading them "
                     f"every {ROUND_EVERY:.0f} s instead): {type(exc).__name__}: {exc}")
            if error != self.listen_error:
                log.error("%s", error)
                self.since = self.clock.now()
            self.listen_error = error
            return None
        if self.listen_error is not None:
            log.info("listening for the other nodes' presence API changes again")
            self.listen_error, self.since = None, self.clock.now()
        self.listening = found is not None
        return found

    def counted(self) -> dict[str, int]:
        """What this node handed over, took, dropped and shared, by outcome (/metrics)."""
        c, s = self.handoff.counters, self.shown.counters
        return {
            "handed_off_events": c["handed_off_events"], "handed_off_users": c["handed_off_users"],
            "handoff_failed": c["failed"], "taken_events": c["taken_events"],
            "taken_users": c["taken_users"], "expired_events": c["expired_events"],
            "expired_users": c["expired_users"], "unfollowed_events": c["unfollowed_events"],
            "lost": c["lost_events"] + c["lost_users"], "shown_written": s["published"],
            "shown_read": s["applied"], "shown_unreadable": s["unreadable"]}

    def statuses(self) -> list[PartStatus]:
        """The part `api/handoff`: input handed over and taken, shown states shared."""
        counters = self.counted() | {"backlog": sum(self.handoff.backlog.values()),
                                     "listening": int(self.listening)}
        error = self.error or self.listen_error
        state = PartState.DEGRADED if error is not None else PartState.OK
        return [PartStatus("api/handoff", "handoff", state, self.since, error,
                           FIX if error else None, counters)]
