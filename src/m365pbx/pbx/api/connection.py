"""The built-in presence API as a PBX connection: apps PUT users and POST events to it.

Nothing is connected outwards: "showing" presence in this PBX means recording it for the
API's readers, line state and PBX presence arrive through the inbound REST route, and the
user directory is whatever the PBX or app last PUT. The connection keeps it in memory only;
the service layer saves it on each upload (`on_users`) and hands it back after a restart
(`restore_users`), since this package knows nothing of the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, cast

from m365pbx.clock import Clock, SystemClock
from m365pbx.core.presence import PbxPresence, PbxState
from m365pbx.pbx.base import ConnectionState, ConnectionStatus, PbxEvent, PbxUser

DEFAULT_EVENT_BUFFER = 10_000
"""Inbound events held for the sync layer before the route answers 503."""


@dataclass(frozen=True, slots=True)
class ShownPresence:
    """m365pbx now shows `state` for user `key` on connection `connection`."""

    connection: str
    key: str
    state: PbxState
    at: datetime


class ConnectionUnavailable(Exception):
    """Events cannot be taken now (stopped, or the buffer is full); nothing was queued."""


class ApiRelay(Protocol):
    """Where the API's input for a connection goes while another node runs its tenant
    (several nodes, docs/cluster.md): set as `ApiConnection.relay` by the service."""

    def elsewhere(self) -> bool:
        """Whether another node runs the connection's tenant now."""
        ...

    def watches(self, key: str) -> bool:
        """Whether the node running the tenant follows this key."""
        ...

    def waiting(self) -> str | None:
        """Why this node cannot tell yet which keys are followed, or None."""
        ...

    async def events(self, events: list[PbxEvent]) -> None:
        """Hand the events on, in order; ConnectionUnavailable if they cannot be."""
        ...

    async def users(self, users: list[PbxUser]) -> None:
        """Hand the directory on; ConnectionUnavailable if it cannot be."""
        ...


_STOP = object()


class ApiConnection:
    """A PbxConnection whose PBX side is the presence API itself."""

    def __init__(
        self,
        name: str,
        *,
        clock: Clock | None = None,
        event_buffer: int = DEFAULT_EVENT_BUFFER,
    ) -> None:
        self.name = name
        self.clock = clock or SystemClock()
        # Unbounded so that stop()'s end marker always fits; submit() enforces the limit.
        self._events: asyncio.Queue[object] = asyncio.Queue()
        self._limit = event_buffer
        self._state = ConnectionState.STARTING
        self._since: datetime | None = None
        self._shown: dict[str, PbxState] = {}
        self._watched: dict[str, PbxUser] = {}
        self._users: dict[str, PbxUser] = {}
        self._uploaded = False
        self._shown_listeners: list[Callable[[ShownPresence], None]] = []
        self._users_listeners: list[Callable[[list[PbxUser]], None]] = []
        self.relay: ApiRelay | None = None

    def __repr__(self) -> str:
        return f"ApiConnection({self.name!r}, {self._state.value})"

    async def start(self) -> None:
        """Mark the connection connected: the API is served by the web layer."""
        self._set_state(ConnectionState.CONNECTED)

    async def stop(self) -> None:
        """Refuse further events and end `events()` once the queued ones are taken."""
        if self._state is ConnectionState.STOPPED:
            return
        self._set_state(ConnectionState.STOPPED)
        self._events.put_nowait(_STOP)

    def status(self) -> ConnectionStatus:
        """The current state (connected once started); there is no peer to fail."""
        return ConnectionStatus(self._state, None, self._since)

    async def set_presence(self, user: PbxUser, presence: PbxPresence, note: str) -> None:
        """Record what m365pbx shows for `user` and tell the listeners; `online` drops the note."""
        state = PbxState(presence, "" if presence is PbxPresence.ONLINE else note)
        if self._shown.get(user.key) == state:
            return
        self._shown[user.key] = state
        shown = ShownPresence(self.name, user.key, state, self.clock.now())
        for listener in list(self._shown_listeners):
            listener(shown)

    def shown(self, key: str) -> PbxState | None:
        """What m365pbx shows for the user with this key, if anything was set."""
        return self._shown.get(key)

    def shown_all(self) -> Mapping[str, PbxState]:
        """What m365pbx shows, for every user it set presence for."""
        return dict(self._shown)

    async def watch(self, users: list[PbxUser]) -> None:
        """Accept events for these users only from now on (replaces the set)."""
        self._watched = {user.key: user for user in users}

    def watches(self, key: str) -> bool:
        """Whether events for this key are accepted."""
        return key in self._watched

    def watched(self) -> list[PbxUser]:
        """The watched users, by key."""
        return [self._watched[key] for key in sorted(self._watched)]

    def events(self) -> AsyncIterator[PbxEvent]:
        """Accepted events in arrival order; ends after `stop()`. One reader only."""
        return self._drain()

    async def _drain(self) -> AsyncIterator[PbxEvent]:
        while True:
            item = await self._events.get()
            if item is _STOP:
                return
            yield cast(PbxEvent, item)

    def submit(self, events: Iterable[PbxEvent]) -> int:
        """Queue events (all or none) for `events()`; ConnectionUnavailable if they don't fit."""
        batch = list(events)
        if self._state is ConnectionState.STOPPED:
            raise ConnectionUnavailable(f"PBX connection {self.name!r} is stopped")
        free = self._limit - self._events.qsize()
        if len(batch) > free:
            raise ConnectionUnavailable(
                f"PBX connection {self.name!r} holds {self._events.qsize()} unprocessed "
                "events; retry later"
            )
        for event in batch:
            self._events.put_nowait(event)
        return len(batch)

    def room(self) -> int:
        """How many more events `submit` takes now."""
        return max(0, self._limit - self._events.qsize())

    async def list_users(self) -> list[PbxUser]:
        """The users an API client registered last, or restored ones (else empty)."""
        return [self._users[key] for key in sorted(self._users)]

    def replace_users(self, users: Iterable[PbxUser]) -> int:
        """Replace the registered directory and tell the listeners; return its size."""
        self._users = {user.key: user for user in users}
        self._uploaded = True
        current = [self._users[key] for key in sorted(self._users)]
        for listener in list(self._users_listeners):
            listener(current)
        return len(current)

    def restore_users(self, users: Iterable[PbxUser], *, newer: bool = False) -> int:
        """Take a directory saved before a restart, silently; return its size (0 if ignored).

        The listeners are not told: they react to uploads, and this is not one. Once a
        client has uploaded, its directory is newer and a restore changes nothing, unless
        the saved one is `newer` (uploaded to another node since: a takeover).
        """
        if self._uploaded and not newer:
            return 0
        self._users = {user.key: user for user in users}
        return len(self._users)

    def on_shown(self, listener: Callable[[ShownPresence], None]) -> Callable[[], None]:
        """Call `listener` whenever the shown presence changes; return the unsubscribe call."""
        self._shown_listeners.append(listener)
        return lambda: self._shown_listeners.remove(listener)

    def on_users(self, listener: Callable[[list[PbxUser]], None]) -> Callable[[], None]:
        """Call `listener` with the directory whenever a client PUTs it; return unsubscribe."""
        self._users_listeners.append(listener)
        return lambda: self._users_listeners.remove(listener)

    def _set_state(self, state: ConnectionState) -> None:
        self._state = state
        self._since = self.clock.now()
