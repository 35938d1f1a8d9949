"""What the presence API shows: each person's presence on both sides, and a feed of changes.

The sync layer implements `PresenceView` from its own state; `MemoryPresenceView` is a
complete in-memory implementation for tests, the demo and anything that feeds it directly.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from m365pbx.core.presence import Activity, Availability, LineState, PbxState, TeamsPresence


@dataclass(frozen=True, slots=True)
class TeamsSide:
    """Teams presence as Graph last reported it."""

    availability: Availability | None = None
    activity: Activity | None = None
    status_message: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TeamsSession:
    """Our own `setPresence` session in Teams for the person (from PBX line state)."""

    presence: TeamsPresence
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PersonPresence:
    """One person on one PBX connection as the API shows them; None where unknown."""

    key: str
    connection: str
    person_id: int | None = None
    display_name: str | None = None
    teams_user_id: str | None = None
    teams: TeamsSide | None = None
    # What m365pbx shows for the person in the PBX (the "PBX side" switchboards read).
    pbx: PbxState | None = None
    line_state: LineState | None = None
    # What the person set on the PBX themselves (phone or PBX app), not our own writes.
    pbx_set_by_person: PbxState | None = None
    session: TeamsSession | None = None

    def replace(self, **changes: Any) -> PersonPresence:
        """Return a copy with some fields changed."""
        return dataclasses.replace(self, **changes)


@runtime_checkable
class PresenceView(Protocol):
    """The people the API serves and their presence; implemented by the sync layer."""

    def people(self) -> list[PersonPresence]:
        """Everyone's current presence, in a stable order (connection, then key)."""
        ...

    def changes(self) -> AsyncIterator[PersonPresence]:
        """Each person's new state after every change published after this call returns.

        The iterator must be subscribed when `changes()` returns (not at the first
        `__anext__`): the stream takes a snapshot right after and must not miss what
        happens in between. It ends when the view shuts down.
        """
        ...


_CLOSED = object()


class _ChangeFeed:
    """One subscriber's unbounded queue of changes; the API's stream bounds per client."""

    def __init__(self, view: MemoryPresenceView) -> None:
        self._view = view
        self._queue: asyncio.Queue[object] = asyncio.Queue()

    def __aiter__(self) -> _ChangeFeed:
        return self

    async def __anext__(self) -> PersonPresence:
        item = await self._queue.get()
        if item is _CLOSED:
            self._view._feeds.discard(self)
            raise StopAsyncIteration
        assert isinstance(item, PersonPresence)
        return item

    async def aclose(self) -> None:
        """Stop receiving changes."""
        self._view._feeds.discard(self)

    def _offer(self, item: object) -> None:
        self._queue.put_nowait(item)


def _sort_key(person: PersonPresence) -> tuple[str, str]:
    return (person.connection, person.key)


class MemoryPresenceView:
    """A PresenceView kept in memory: `put`, `update` and `remove` publish changes."""

    def __init__(self, people: Iterable[PersonPresence] = ()) -> None:
        self._people: dict[tuple[str, str], PersonPresence] = {
            _sort_key(person): person for person in people
        }
        self._feeds: set[_ChangeFeed] = set()
        self._closed = False

    @property
    def subscribers(self) -> int:
        """How many change iterators are open."""
        return len(self._feeds)

    def people(self) -> list[PersonPresence]:
        """Everyone's current presence, by connection and key."""
        return [self._people[key] for key in sorted(self._people)]

    def get(self, connection: str, key: str) -> PersonPresence | None:
        """One person's presence, or None."""
        return self._people.get((connection, key))

    def changes(self) -> AsyncIterator[PersonPresence]:
        """Each change published from now on; ends when the view is closed."""
        feed = _ChangeFeed(self)
        if self._closed:
            feed._offer(_CLOSED)
        else:
            self._feeds.add(feed)
        return feed

    def put(self, person: PersonPresence) -> bool:
        """Add or replace a person; publish and return True if anything changed."""
        slot = _sort_key(person)
        if self._people.get(slot) == person:
            return False
        self._people[slot] = person
        self._publish(person)
        return True

    def update(self, connection: str, key: str, **changes: Any) -> PersonPresence:
        """Change some fields of a known person (KeyError if unknown); publish if changed."""
        person = self._people[(connection, key)].replace(**changes)
        self.put(person)
        return person

    def remove(self, connection: str, key: str) -> bool:
        """Forget a person; return whether they were known (removals are not streamed)."""
        return self._people.pop((connection, key), None) is not None

    def close(self) -> None:
        """End every change iterator (service shutdown)."""
        self._closed = True
        for feed in list(self._feeds):
            feed._offer(_CLOSED)
        self._feeds.clear()

    def _publish(self, person: PersonPresence) -> None:
        for feed in list(self._feeds):
            feed._offer(person)
