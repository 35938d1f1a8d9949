"""The contract between m365pbx and every PBX connection (SIP, built-in API, Asterisk, ...).

A connection shows PBX presence for people (Teams → PBX), reports line state and the PBX
presence people set on their phones (PBX → Teams), and lists its users for matching.
Connections know nothing of the store, Graph or the web layer (design.md rule 2).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from m365pbx.core.matching.users import PbxUser
from m365pbx.core.presence import LineState, PbxPresence

__all__ = ["ConnectionState", "ConnectionStatus", "LineStateEvent", "PbxConnection",
           "PbxEvent", "PbxPresenceEvent", "PbxUser"]


class ConnectionState(StrEnum):
    """What an admin sees for a PBX connection."""

    STARTING = "starting"
    CONNECTED = "connected"
    DEGRADED = "degraded"
    BAD_CREDENTIALS = "bad_credentials"
    ERROR = "error"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class LineStateEvent:
    """The person's phone line changed state (from the PBX)."""

    key: str
    state: LineState
    at: datetime
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class PbxPresenceEvent:
    """The person set a presence on the PBX side (on their phone or in a PBX app)."""

    key: str
    presence: PbxPresence
    at: datetime
    note: str = ""
    sequence: int = 0


PbxEvent = LineStateEvent | PbxPresenceEvent


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    """A connection's visible state with the last error in words (never a secret)."""

    state: ConnectionState
    last_error: str | None = None
    since: datetime | None = None
    # Peers or input refused so far, by reason (e.g. foreign-address): not errors of ours.
    refused: Mapping[str, int] = field(default_factory=dict)


@runtime_checkable
class PbxConnection(Protocol):
    """What every PBX connection implements."""

    name: str

    async def start(self) -> None:
        """Connect (or begin trying to); return once the connection is running."""
        ...

    async def stop(self) -> None:
        """Withdraw what this connection published where the PBX allows it, then close."""
        ...

    def status(self) -> ConnectionStatus:
        """The current state and last error."""
        ...

    async def set_presence(self, user: PbxUser, presence: PbxPresence, note: str) -> None:
        """Show `presence` (with `note`) for `user` in the PBX; `online` clears ours."""
        ...

    async def watch(self, users: list[PbxUser]) -> None:
        """Follow line state and PBX presence of these users from now on (replaces the set)."""
        ...

    def events(self) -> AsyncIterator[PbxEvent]:
        """Line-state and PBX-presence events of the watched users, in arrival order."""
        ...

    async def list_users(self) -> list[PbxUser]:
        """The PBX's users, for matching; empty if this kind of PBX cannot list them."""
        ...
