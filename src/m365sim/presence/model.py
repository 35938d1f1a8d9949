"""One user's presence inputs and the documented aggregation over them (graph.md 3.8, 3.9).

Everything here is a plain function of the state and `now` (microseconds since the epoch):
no clock, no I/O. The service decides when to call it and what to publish.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from m365sim.presence.states import (
    AVAILABLE_INACTIVE,
    AWAY,
    IN_A_MEETING,
    OFFLINE,
    OFFLINE_OOF,
    State,
    rank,
)
from m365sim.presence.timefmt import US_PER_MINUTE

# An Available app session fades after 5 minutes without a refresh and again after 5 more
# (graph.md 3.3 and 3.9 rule 6; concepts/cloud-communications-manage-presence-state.md).
FADE_TO_INACTIVE_US = 5 * US_PER_MINUTE
FADE_TO_AWAY_US = 10 * US_PER_MINUTE

# Availabilities an out-of-office calendar turns into `<availability>/OutOfOffice`. Only
# Available is documented ("Available, out of office"); Away and BeRightBack are chosen.
_OOF_SHOWS_IN: frozenset[str] = frozenset({"Available", "Away", "BeRightBack"})


@dataclass(slots=True)
class AppSession:
    """An application's presence session from setPresence, keyed by its app id."""

    session_id: str
    state: State
    refreshed_at: int
    expires_at: int
    created_at: int


@dataclass(slots=True)
class Preferred:
    """A user-preferred presence, from Teams or setUserPreferredPresence."""

    state: State
    set_at: int
    expires_at: int
    set_by: str


@dataclass(slots=True)
class StatusMessage:
    """A status message (text only) with its optional expiry."""

    content: str
    published_at: int
    expires_at: int | None
    set_by: str


class View(NamedTuple):
    """What a reader of the presence sees; a change to any field is a visible change."""

    availability: str
    activity: str
    status_message: str | None
    out_of_office: bool


@dataclass(slots=True)
class UserPresence:
    """Every presence input of one user, plus the last aggregate the service published."""

    user_id: str
    # Teams clients signed in, by client name ("desktop", "mobile", "web"), with their state.
    clients: dict[str, State] = field(default_factory=dict)
    apps: dict[str, AppSession] = field(default_factory=dict)
    preferred: Preferred | None = None
    status: StatusMessage | None = None
    # "InAMeeting" or "OutOfOffice" while the outlook part says so.
    calendar: str | None = None
    # Bookkeeping of the service: the last aggregate, its stamp, the next instant it may
    # change, and the deadline already queued for this user.
    view: View | None = None
    sequence: str = ""
    # The public JSON of `view`, built on first read (getPresencesByUserId reads it often).
    public: dict[str, Any] | None = None
    next_change: int | None = None
    scheduled: int | None = None


def app_session_state(session: AppSession, now: int) -> State:
    """The state an app session shows at `now`, after the Available timeout (rule 6)."""
    if session.state[0] != "Available":
        return session.state
    idle = now - session.refreshed_at
    if idle >= FADE_TO_AWAY_US:
        return AWAY
    if idle >= FADE_TO_INACTIVE_US:
        return AVAILABLE_INACTIVE
    return session.state


def prune(presence: UserPresence, now: int) -> None:
    """Drop what has expired by `now`: app sessions, the preferred presence, the message."""
    if presence.apps:
        for key in [key for key, s in presence.apps.items() if s.expires_at <= now]:
            del presence.apps[key]
    if presence.preferred is not None and presence.preferred.expires_at <= now:
        presence.preferred = None
    status = presence.status
    if status is not None and status.expires_at is not None and status.expires_at <= now:
        presence.status = None


def has_session(presence: UserPresence) -> bool:
    """Whether at least one presence session exists (a Teams client or an app session)."""
    return bool(presence.clients) or bool(presence.apps)


def aggregate_state(presence: UserPresence, now: int) -> State:
    """The reported availability/activity at `now` of an already pruned presence.

    Rules (graph.md 3.9): no session → Offline (rules 3, 7, 8); a preferred presence beats
    every session (rule 2); otherwise the highest-ranked session state (rule 2), where a
    calendar meeting counts as one more Busy/InAMeeting session and an out-of-office
    calendar replaces the activity of Available (and Away, BeRightBack) by OutOfOffice
    (rule 9; the combination is chosen, see docs/simulator/presence.md).
    """
    out_of_office = presence.calendar == "OutOfOffice"
    if not has_session(presence):
        return OFFLINE_OOF if out_of_office else OFFLINE
    if presence.preferred is not None:
        state = presence.preferred.state
    else:
        candidates = list(presence.clients.values())
        candidates.extend(app_session_state(s, now) for s in presence.apps.values())
        if presence.calendar == "InAMeeting":
            candidates.append(IN_A_MEETING)
        state = max(candidates, key=rank)
    if out_of_office and state[0] in _OOF_SHOWS_IN:
        return (state[0], "OutOfOffice")
    return state


def next_change(presence: UserPresence, now: int) -> int | None:
    """The earliest instant after `now` at which the aggregate may change by time alone."""
    soonest: int | None = None

    def consider(when: int | None) -> None:
        nonlocal soonest
        if when is not None and when > now and (soonest is None or when < soonest):
            soonest = when

    for session in presence.apps.values():
        consider(session.expires_at)
        if session.state[0] == "Available":
            consider(session.refreshed_at + FADE_TO_INACTIVE_US)
            consider(session.refreshed_at + FADE_TO_AWAY_US)
    if presence.preferred is not None:
        consider(presence.preferred.expires_at)
    if presence.status is not None:
        consider(presence.status.expires_at)
    return soonest


def evaluate(presence: UserPresence, now: int) -> tuple[View, int | None]:
    """Prune, then the visible view at `now` and the next instant it may change."""
    prune(presence, now)
    availability, activity = aggregate_state(presence, now)
    status = presence.status
    view = View(availability, activity, status.content if status is not None else None,
                presence.calendar == "OutOfOffice")
    return view, next_change(presence, now)
