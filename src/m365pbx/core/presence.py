"""Presence vocabularies of both sides: Teams availability/activity, PBX presence, line state.

Graph documents its values in PascalCase on the wire, newer pages list them in camelCase,
and Microsoft adds values over time (`Focusing`, `AvailableInactive`); see Graph's presence
resource page (api-reference/v1.0/resources/presence.md). Parsing is therefore
case-insensitive, and a value we do not know takes a configurable fallback and is counted
instead of raising.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum


class Availability(StrEnum):
    """Teams `presence.availability`, as Graph reports it."""

    AVAILABLE = "Available"
    AVAILABLE_IDLE = "AvailableIdle"
    AWAY = "Away"
    BE_RIGHT_BACK = "BeRightBack"
    BUSY = "Busy"
    BUSY_IDLE = "BusyIdle"
    DO_NOT_DISTURB = "DoNotDisturb"
    OFFLINE = "Offline"
    PRESENCE_UNKNOWN = "PresenceUnknown"


class Activity(StrEnum):
    """Teams `presence.activity`, as Graph reports it."""

    AVAILABLE = "Available"
    AVAILABLE_INACTIVE = "AvailableInactive"
    AWAY = "Away"
    BE_RIGHT_BACK = "BeRightBack"
    BUSY = "Busy"
    DO_NOT_DISTURB = "DoNotDisturb"
    FOCUSING = "Focusing"
    IN_A_CALL = "InACall"
    IN_A_CONFERENCE_CALL = "InAConferenceCall"
    INACTIVE = "Inactive"
    IN_A_MEETING = "InAMeeting"
    OFFLINE = "Offline"
    OFF_WORK = "OffWork"
    OUT_OF_OFFICE = "OutOfOffice"
    PRESENCE_UNKNOWN = "PresenceUnknown"
    PRESENTING = "Presenting"
    URGENT_INTERRUPTIONS_ONLY = "UrgentInterruptionsOnly"


class PbxPresence(StrEnum):
    """What a PBX shows for a person; `online` means nothing is set."""

    ONLINE = "online"
    AWAY = "away"
    BUSY = "busy"
    DND = "dnd"
    ON_THE_PHONE = "on-the-phone"
    MEETING = "meeting"


class LineState(StrEnum):
    """What the person's phone line is doing."""

    IDLE = "idle"
    RINGING = "ringing"
    ON_THE_PHONE = "on-the-phone"
    HELD = "held"


class ShowAs(StrEnum):
    """An Outlook event's `showAs` (resources/event.md: freeBusyStatus), as Graph sends it."""

    FREE = "free"
    TENTATIVE = "tentative"
    BUSY = "busy"
    OOF = "oof"
    WORKING_ELSEWHERE = "workingElsewhere"
    UNKNOWN = "unknown"


# Line states that count as "in a call" for Teams: a held call is still a call.
CALL_LINE_STATES = frozenset({LineState.ON_THE_PHONE, LineState.HELD})

_AVAILABILITY_BY_FOLDED = {value.value.casefold(): value for value in Availability}
_ACTIVITY_BY_FOLDED = {value.value.casefold(): value for value in Activity}
_PBX_BY_FOLDED = {value.value.casefold(): value for value in PbxPresence}
_LINE_BY_FOLDED = {value.value.casefold(): value for value in LineState}
_SHOW_AS_BY_FOLDED = {value.value.casefold(): value for value in ShowAs}
# Spellings seen in the products we replace: innovaphone writes "Offwork" and PBXs
# commonly say "busy" for a line that is in use.
_LINE_BY_FOLDED["busy"] = LineState.ON_THE_PHONE
_PBX_BY_FOLDED["do-not-disturb"] = PbxPresence.DND
_PBX_BY_FOLDED["on-phone"] = PbxPresence.ON_THE_PHONE


def lookup_availability(raw: str) -> Availability | None:
    """Return the Availability for `raw` compared case-insensitively, or None if unknown."""
    return _AVAILABILITY_BY_FOLDED.get(raw.strip().casefold())


def lookup_activity(raw: str) -> Activity | None:
    """Return the Activity for `raw` compared case-insensitively, or None if unknown."""
    return _ACTIVITY_BY_FOLDED.get(raw.strip().casefold())


def lookup_pbx_presence(raw: str) -> PbxPresence | None:
    """Return the PbxPresence for `raw` compared case-insensitively, or None if unknown."""
    return _PBX_BY_FOLDED.get(raw.strip().casefold())


def lookup_line_state(raw: str) -> LineState | None:
    """Return the LineState for `raw` compared case-insensitively, or None if unknown."""
    return _LINE_BY_FOLDED.get(raw.strip().casefold())


def lookup_show_as(raw: str) -> ShowAs | None:
    """Return the ShowAs for `raw` compared case-insensitively, or None if unknown."""
    return _SHOW_AS_BY_FOLDED.get(raw.strip().casefold())


@dataclass(frozen=True, slots=True)
class TeamsPresence:
    """One Teams presence reading: availability plus activity."""

    availability: Availability
    activity: Activity

    def __str__(self) -> str:
        return f"{self.availability.value}/{self.activity.value}"


@dataclass(frozen=True, slots=True)
class PbxState:
    """One PBX presence reading: the presence value and its free-text note."""

    presence: PbxPresence
    note: str = ""


@dataclass(frozen=True, slots=True)
class UnknownValueFallback:
    """What an unknown Teams value turns into (configurable per installation)."""

    availability: Availability = Availability.PRESENCE_UNKNOWN
    activity: Activity = Activity.PRESENCE_UNKNOWN


@dataclass(slots=True)
class UnknownValues:
    """Counts the values Microsoft sent that we do not know, keyed by (field, raw value)."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)

    def record(self, field_name: str, raw: str) -> None:
        """Count one occurrence of an unknown value."""
        self.counts[(field_name, raw)] += 1

    @property
    def total(self) -> int:
        """Number of unknown values seen so far."""
        return sum(self.counts.values())


def parse_teams_presence(
    availability: str | None,
    activity: str | None,
    *,
    fallback: UnknownValueFallback | None = None,
    unknown: UnknownValues | None = None,
) -> TeamsPresence:
    """Turn Graph's raw strings into a TeamsPresence; unknown values take the fallback."""
    fallback = fallback or UnknownValueFallback()
    parsed_availability = lookup_availability(availability or "")
    if parsed_availability is None:
        if unknown is not None:
            unknown.record("availability", availability or "")
        parsed_availability = fallback.availability
    parsed_activity = lookup_activity(activity or "")
    if parsed_activity is None:
        if unknown is not None:
            unknown.record("activity", activity or "")
        parsed_activity = fallback.activity
    return TeamsPresence(parsed_availability, parsed_activity)


# The combinations Graph accepts, per api-reference/v1.0/api/presence-setpresence.md and
# presence-setuserpreferredpresence.md.
SET_PRESENCE_COMBINATIONS = frozenset(
    {
        TeamsPresence(Availability.AVAILABLE, Activity.AVAILABLE),
        TeamsPresence(Availability.BUSY, Activity.IN_A_CALL),
        TeamsPresence(Availability.BUSY, Activity.IN_A_CONFERENCE_CALL),
        TeamsPresence(Availability.AWAY, Activity.AWAY),
        TeamsPresence(Availability.DO_NOT_DISTURB, Activity.PRESENTING),
    }
)
PREFERRED_PRESENCE_COMBINATIONS = frozenset(
    {
        TeamsPresence(Availability.AVAILABLE, Activity.AVAILABLE),
        TeamsPresence(Availability.BUSY, Activity.BUSY),
        TeamsPresence(Availability.DO_NOT_DISTURB, Activity.DO_NOT_DISTURB),
        TeamsPresence(Availability.BE_RIGHT_BACK, Activity.BE_RIGHT_BACK),
        TeamsPresence(Availability.AWAY, Activity.AWAY),
        TeamsPresence(Availability.OFFLINE, Activity.OFF_WORK),
    }
)
