"""The presence API's view of the hub: each person's presence on both sides, and changes."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import APIRouter

from m365pbx.clock import Clock
from m365pbx.core.policy import PersonState
from m365pbx.core.presence import PbxPresence, PbxState
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.api.keys import ApiKeyChecker
from m365pbx.pbx.api.routes import api_router
from m365pbx.pbx.api.view import (
    MemoryPresenceView,
    PersonPresence,
    TeamsSession,
    TeamsSide,
)
from m365pbx.pbx.base import PbxConnection
from m365pbx.sync.hub import PresenceHub
from m365pbx.sync.people import Person


def _when(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _pbx_side(state: PersonState) -> PbxState | None:
    if state.wrote_pbx is not None:
        return PbxState(state.wrote_pbx.presence, state.wrote_pbx.note)
    # Nothing written yet although Teams is known: the policy found nothing to show, which
    # is the PBX's own "online" (docs/presence-api.md: null is only for what is unknown).
    if state.teams is not None or state.calendar:
        return PbxState(PbxPresence.ONLINE, "")
    return None


def person_presence(person: Person, hub: PresenceHub) -> PersonPresence:
    """What the API shows for one person, from the hub's state."""
    state = hub.state_of(person.id)
    if state is None:
        return PersonPresence(key=person.key, connection=person.connection,
                              person_id=person.id, display_name=person.display_name or None,
                              teams_user_id=person.teams_user_id)
    teams = state.teams
    session = state.session
    # Built in one call: dataclasses.replace on a fresh entry cost as much again, twice per
    # person at start-up (the first poll of 50,000 people, issue 20 §6).
    return PersonPresence(
        key=person.key, connection=person.connection, person_id=person.id,
        display_name=person.display_name or None, teams_user_id=person.teams_user_id,
        teams=None if teams is None else TeamsSide(
            teams.presence.availability, teams.presence.activity,
            teams.status_message or None, _when(teams.at)),
        pbx=_pbx_side(state),
        line_state=None if state.line is None else state.line.state,
        pbx_set_by_person=None if state.pbx_own is None else PbxState(state.pbx_own.presence,
                                                                      state.pbx_own.note),
        session=None if session is None or session.ended_at is not None else TeamsSession(
            session.presence, _when(session.expires_at)),
    )


RECENT = 5000
"""How many shown changes (of everyone) the admin UI's person page picks from."""


@dataclass(frozen=True, slots=True)
class ShownChange:
    """What one person's sides showed from `at` on (the admin UI's "last changes")."""

    at: datetime
    person_id: int
    teams: str | None
    pbx: str | None
    line: str | None


def _shown(person: PersonPresence) -> tuple[str | None, str | None, str | None]:
    teams = None if person.teams is None or person.teams.availability is None else (
        f"{person.teams.availability} / {person.teams.activity}")
    pbx = None if person.pbx is None else (
        f"{person.pbx.presence}" + (f" “{person.pbx.note}”" if person.pbx.note else ""))
    return teams, pbx, None if person.line_state is None else str(person.line_state)


class HubPresenceView:
    """PresenceView over the hub, kept current by the hub's change listener."""

    def __init__(self, hub: PresenceHub) -> None:
        self.hub = hub
        self._view = MemoryPresenceView()
        # The newest shown changes of everyone: bounded whatever the directory's size.
        self._recent: deque[ShownChange] = deque(maxlen=RECENT)
        # People of tenants another node runs, as that node shows them (service/api_shown.py):
        # this node's hub does not decide what they show.
        self._mirrored: set[tuple[str, str]] = set()
        hub.listen(self._changed)

    def _changed(self, person: Person, _state: object) -> None:
        if (person.connection, person.key) in self._mirrored:
            return
        self._put(person_presence(person, self.hub), person.id)

    def _put(self, shown: PersonPresence, person_id: int | None) -> None:
        before = self._view.get(shown.connection, shown.key)
        now = _shown(shown)
        if (before is None or _shown(before) != now) and person_id is not None:
            self._recent.append(ShownChange(self.hub.clock.now(), person_id, *now))
        self._view.put(shown)

    def mirror(self, shown: PersonPresence) -> None:
        """Show a person of a tenant another node runs, as that node shows them."""
        self._mirrored.add((shown.connection, shown.key))
        self._put(shown, shown.person_id)

    def unmirror(self, connection: str, key: str) -> None:
        """Forget a mirrored person (no longer followed, or this node runs them now)."""
        if (connection, key) in self._mirrored:
            self._mirrored.discard((connection, key))
            self._view.remove(connection, key)

    def is_mirrored(self, connection: str, key: str) -> bool:
        """Whether this person is shown as another node shows them."""
        return (connection, key) in self._mirrored

    def get(self, connection: str, key: str) -> PersonPresence | None:
        """One person's current presence, or None if not shown here."""
        return self._view.get(connection, key)

    def mirrored(self) -> set[tuple[str, str]]:
        """The (connection, key) of the people shown as another node shows them."""
        return set(self._mirrored)

    def recent_changes(self, person_id: int, limit: int = 20) -> list[ShownChange]:
        """One person's last shown changes, newest first (among everyone's newest RECENT)."""
        found = [c for c in reversed(self._recent) if c.person_id == person_id]
        return found[:limit]

    def people(self) -> list[PersonPresence]:
        """Everyone's current presence."""
        return self._view.people()

    def changes(self) -> AsyncIterator[PersonPresence]:
        """Every change from now on."""
        return self._view.changes()

    def refresh(self) -> None:
        """Follow a new set of people (after a directory sync)."""
        current = {(p.connection, p.key): p for p in self.hub.people()}
        for shown in self._view.people():
            slot = (shown.connection, shown.key)
            if slot not in current and slot not in self._mirrored:
                self._view.remove(shown.connection, shown.key)
        for slot, person in current.items():
            if slot not in self._mirrored:
                self._view.put(person_presence(person, self.hub))

    def routers(self, connections: Mapping[str, PbxConnection], keys: ApiKeyChecker,
                clock: Clock) -> list[APIRouter]:
        """The presence API's routes over this view and the built-in API connections."""
        api_connections = {n: c for n, c in connections.items() if isinstance(c, ApiConnection)}
        return [api_router(self, api_connections, keys, clock=clock)]

    def close(self) -> None:
        """End every change stream."""
        self._view.close()
