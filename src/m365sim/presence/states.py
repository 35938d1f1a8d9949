"""Presence vocabulary: the availability/activity pairs each input may hold, and their ranks.

Values are PascalCase as Graph returns them on the wire (graph.md 3.1). Requests are
matched case-insensitively because newer doc pages list camelCase values for the same
states (graph.md 3.1, "Doc inconsistency").
"""

from __future__ import annotations

State = tuple[str, str]
"""An (availability, activity) pair."""

AVAILABLE: State = ("Available", "Available")
AVAILABLE_INACTIVE: State = ("Available", "AvailableInactive")
AWAY: State = ("Away", "Away")
OFFLINE: State = ("Offline", "Offline")
OFFLINE_OOF: State = ("Offline", "OutOfOffice")
IN_A_MEETING: State = ("Busy", "InAMeeting")
PRESENCE_UNKNOWN: State = ("PresenceUnknown", "PresenceUnknown")

# setPresence accepts exactly these pairs (graph.md 3.3; DoNotDisturb/Presenting only in
# the 2024+ pages, which the simulator follows).
SET_PRESENCE_STATES: frozenset[State] = frozenset({
    AVAILABLE,
    ("Busy", "InACall"),
    ("Busy", "InAConferenceCall"),
    AWAY,
    ("DoNotDisturb", "Presenting"),
})

# setUserPreferredPresence accepts exactly these pairs (graph.md 3.5).
PREFERRED_STATES: frozenset[State] = frozenset({
    AVAILABLE,
    ("Busy", "Busy"),
    ("DoNotDisturb", "DoNotDisturb"),
    ("BeRightBack", "BeRightBack"),
    AWAY,
    ("Offline", "OffWork"),
})

# What a Teams client session can report by itself: the Teams-state table of
# concepts/cloud-communications-manage-presence-state.md (graph.md 3.8 rule 6) without the
# calendar-driven OOF/meeting rows and without "Appear offline" (a preferred state).
CLIENT_STATES: frozenset[State] = frozenset({
    AVAILABLE,
    ("Busy", "Busy"),
    ("Busy", "InACall"),
    ("Busy", "InAConferenceCall"),
    IN_A_MEETING,
    ("DoNotDisturb", "DoNotDisturb"),
    ("DoNotDisturb", "Presenting"),
    AWAY,
    ("BeRightBack", "BeRightBack"),
})

# Calendar-driven activities the outlook part may report (graph.md 3.8 rule 5).
CALENDAR_ACTIVITIES: frozenset[str] = frozenset({"InAMeeting", "OutOfOffice"})

# Documented order among sessions: DoNotDisturb > Busy > Available > Away (graph.md 3.9
# rule 2). BeRightBack is not ranked by Microsoft: the simulator puts it between Available
# and Away (chosen; docs/simulator/presence.md).
_AVAILABILITY_RANK: dict[str, int] = {
    "DoNotDisturb": 500,
    "Busy": 400,
    "Available": 300,
    "BeRightBack": 200,
    "Away": 100,
}

# Ties inside one availability are not documented either (graph.md 3.9 rule 2): the more
# specific, more immediate activity wins (chosen). AvailableInactive ranks below Available.
_ACTIVITY_RANK: dict[str, int] = {
    "Presenting": 20,
    "InAConferenceCall": 30,
    "InACall": 20,
    "InAMeeting": 10,
    "AvailableInactive": -10,
}


def rank(state: State) -> int:
    """How strongly a session state competes in the aggregation (higher wins)."""
    return _AVAILABILITY_RANK.get(state[0], 0) + _ACTIVITY_RANK.get(state[1], 0)


def _index(states: frozenset[State]) -> dict[tuple[str, str], State]:
    return {(a.casefold(), b.casefold()): (a, b) for a, b in states}


_SET_INDEX = _index(SET_PRESENCE_STATES)
_PREFERRED_INDEX = _index(PREFERRED_STATES)
_CLIENT_INDEX = _index(CLIENT_STATES)


def _lookup(index: dict[tuple[str, str], State], availability: str, activity: str) -> State | None:
    return index.get((availability.casefold(), activity.casefold()))


def set_presence_state(availability: str, activity: str) -> State | None:
    """The canonical pair if setPresence accepts it, else None."""
    return _lookup(_SET_INDEX, availability, activity)


def preferred_state(availability: str, activity: str) -> State | None:
    """The canonical pair if setUserPreferredPresence accepts it, else None."""
    return _lookup(_PREFERRED_INDEX, availability, activity)


def client_state(availability: str, activity: str) -> State | None:
    """The canonical pair if a Teams client can report it, else None."""
    return _lookup(_CLIENT_INDEX, availability, activity)


def describe(states: frozenset[State]) -> str:
    """The pairs as 'A/B, C/D', sorted, for error messages."""
    return ", ".join(f"{a}/{b}" for a, b in sorted(states, key=lambda s: (-rank(s), s)))
