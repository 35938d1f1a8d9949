"""PBX connections on several nodes: what they send to the PBX runs under the tenant's lease.

A PBX connection serves one tenant, and the hub decides what it shows from that tenant's
Teams readings, which only the node holding `tenant/<name>` has. So a connection's
outbound session runs under that same lease, not one of its own: a `pbx/<connection>` lease
held by another node than the tenant's would publish decisions it never receives.

- **SIP** (`LeasedSipConnection`): a standby node does not start the connection at all (no
  restore, no PUBLISH, no withdrawal). At takeover the holder restores the stored
  publications with their ETags (fenced read-and-purge), starts, and its first PUBLISH for
  each person modifies the publication the old holder left (SIP-If-Match): one
  publication, no gap. On a loss it stops publishing at once (every PUBLISH asks
  `may_publish`, which is false as soon as the lease's deadline passed, even before the
  keeper noticed), saves the ETags it holds (fenced: refused once another node holds the
  tenant) and leaves the publications in place. A clean stop does the same and also ends
  its subscriptions: in a rolling restart the next holder modifies the publications
  before they expire (`publish_expires`); if no node follows, they expire by themselves.
- **Asterisk** (`AsteriskSession`): the AMI connection runs on every node (it only reads
  there); device and presence states are written only while holding the lease, and a
  stopping or losing node never clears them (the next holder sets them again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Coroutine, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from m365pbx.clock import Clock
from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.asterisk import AsteriskConnection
from m365pbx.pbx.base import PbxConnection, PbxUser
from m365pbx.pbx.sip.connection import SipConnection
from m365pbx.pbx.sip.options import SipOptions
from m365pbx.service.leases import Ownership, owned_by_lease
from m365pbx.service.publication_store import StoredSipConnection
from m365pbx.store import Store
from m365pbx.sync.hub import PresenceHub
from m365pbx.sync.leases import LeaseKeeper

__all__ = ["AsteriskSession", "LeasedSession", "LeasedSipConnection", "decide_pbx_again",
           "leased_sessions", "tenant_keeper"]

log = logging.getLogger(__name__)

SAVE_AT_HANDOVER = 5.0
"""Seconds a node handing over waits for its last ETags to be saved."""


class LeasedSession(Protocol):
    """A PBX connection's outbound session, run while this node holds its tenant."""

    name: str

    async def take_over(self, may_act: Callable[[], bool]) -> None:
        """This node holds the tenant now: start acting on the PBX (`may_act` per write)."""
        ...

    async def hand_over(self, *, clean: bool) -> None:
        """Stop acting without undoing anything (clean: this node stops, else it lost)."""
        ...


class LeasedSipConnection(StoredSipConnection):
    """A StoredSipConnection that publishes only while this node holds its tenant."""

    def __init__(self, name: str, options: SipOptions, store: Store, clock: Clock,
                 ownership: Ownership) -> None:
        super().__init__(name, options, store, clock)
        self.keeper.fenced_by = ownership
        self.may_publish = lambda: False
        self.holding = False

    async def start(self) -> None:
        """Nothing: the session starts when this node takes the tenant (take_over)."""

    async def stop(self) -> None:
        """Hand over if still holding (normally done already when the lease ended)."""
        if self.holding:
            await self.hand_over(clean=True)

    async def set_presence(self, user: PbxUser, presence: PbxPresence, note: str) -> None:
        """Publish while holding the tenant; elsewhere it is the holder's to decide."""
        if self.holding:
            await super().set_presence(user, presence, note)

    async def watch(self, users: list[PbxUser]) -> None:
        """Subscribe while holding the tenant (its directory sync runs only there)."""
        if self.holding:
            await super().watch(users)

    async def take_over(self, may_act: Callable[[], bool]) -> None:
        """Restore the stored publications (before anything is sent), then start."""
        self.keeper.forget()
        self.may_publish = may_act
        await self.keeper.restore()
        await SipConnection.start(self)
        self.kept.run()
        self.holding = True

    async def hand_over(self, *, clean: bool) -> None:
        """Stop publishing at once, save the ETags held (fenced), leave the publications."""
        self.holding = False
        self.may_publish = lambda: False
        try:
            async with asyncio.timeout(SAVE_AT_HANDOVER):
                await self.kept.stop(save=True)
        except TimeoutError:
            log.warning("%s: the last SIP publication ETags were not saved within %g s; the "
                        "next holder may publish some afresh", self.name, SAVE_AT_HANDOVER)
        await self.leave(clean=clean)
        self.keeper.forget()
        log.info("%s: left the SIP publications to the next holder of the tenant%s", self.name,
                 "" if clean else " (lease lost)")


class AsteriskSession:
    """An Asterisk connection's writes, run while this node holds its tenant."""

    def __init__(self, connection: AsteriskConnection) -> None:
        self.name = connection.name
        self.connection = connection
        connection.clear_at_stop = False
        connection.may_write = lambda: False

    async def take_over(self, may_act: Callable[[], bool]) -> None:
        """Write from now on (the hub writes each person's state again)."""
        self.connection.may_write = may_act

    async def hand_over(self, *, clean: bool) -> None:
        """Write no more, and forget what was written: it is the next holder's now."""
        self.connection.may_write = lambda: False
        self.connection.forget_written()


def leased_sessions(connections: Mapping[str, PbxConnection],
                    names: Iterable[str]) -> list[LeasedSession]:
    """The outbound sessions of these PBX connections that must run under the lease (the
    built-in API connection sends nothing to a PBX: none)."""
    sessions: list[LeasedSession] = []
    for name in names:
        connection = connections.get(name)
        if isinstance(connection, LeasedSipConnection):
            sessions.append(connection)
        elif isinstance(connection, AsteriskConnection):
            sessions.append(AsteriskSession(connection))
    return sessions


def decide_pbx_again(hub: PresenceHub, connections: Collection[str]) -> None:
    """After taking a tenant (back): another holder may have changed these PBX connections
    and Teams since this node last held it, so its people's PBX state is decided anew from
    the first fresh Teams reading (the readings held here are stale)."""
    names = set(connections)
    for person in hub.people():
        state = hub.state_of(person.id)
        if person.connection in names and state is not None and state.wrote_pbx is not None:
            hub.restore(person.id, replace(state, wrote_pbx=None, teams=None, teams_own=None))


def tenant_keeper(run: Callable[[], Coroutine[Any, Any, None]], ownership: Ownership,
                  node: str, clock: Clock, *, lifetime: float,
                  sessions: Sequence[LeasedSession], stopping: Callable[[], bool],
                  taken_over: Callable[[list[str]], None]) -> LeaseKeeper:
    """A keeper running the tenant's `run()` and its PBX connections' outbound sessions
    while `node` holds the tenant; `taken_over(names)` after the sessions started (the hub
    shows everyone again), `stopping()` tells a clean stop from a lost lease."""
    keeper: LeaseKeeper | None = None

    def may_act() -> bool:
        return keeper is not None and keeper.may_act()

    async def work() -> None:
        started: list[LeasedSession] = []
        try:
            for session in sessions:
                await session.take_over(may_act)
                started.append(session)
            if started:
                taken_over([s.name for s in started])
            await run()
        finally:
            clean = stopping()
            for session in started:
                try:
                    await session.hand_over(clean=clean)
                except Exception:  # the next session is handed over all the same
                    log.exception("%s: handing the PBX session over failed", session.name)

    keeper = owned_by_lease(work, ownership, node, clock, lifetime=lifetime)
    return keeper
