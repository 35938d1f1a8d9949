"""Mapping rules (Teams → PBX, PBX → Teams, calendar → PBX) and the rule sets holding them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import TypeVar

from m365pbx.core.durations import format_duration
from m365pbx.core.presence import (
    Activity,
    Availability,
    LineState,
    PbxPresence,
    ShowAs,
    TeamsPresence,
)


class Channel(StrEnum):
    """Where a PBX → Teams rule writes: our presence session or the preferred presence."""

    SESSION = "session"
    PREFERRED = "preferred"


@dataclass(frozen=True, slots=True)
class TeamsToPbxRule:
    """Teams availability and/or activity → PBX presence; an absent field matches anything."""

    pbx: PbxPresence
    availability: Availability | None = None
    activity: Activity | None = None
    origin: str = field(default="default", compare=False)

    @property
    def specificity(self) -> int:
        """Higher wins: both fields, then activity alone, then availability alone, then none."""
        # mapping.md: the more specific activity wins over the availability (InACall beats Busy).
        return (2 if self.activity is not None else 0) + (1 if self.availability else 0)

    @property
    def condition(self) -> tuple[Availability | None, Activity | None]:
        """The part of the rule that decides whether it matches."""
        return (self.availability, self.activity)

    def matches(self, presence: TeamsPresence) -> bool:
        """Whether this rule applies to the given Teams presence."""
        return (self.availability is None or self.availability is presence.availability) and (
            self.activity is None or self.activity is presence.activity
        )

    def describe(self) -> str:
        """A short human sentence for this rule."""
        parts = []
        if self.availability is not None:
            parts.append(f"availability {self.availability.value}")
        if self.activity is not None:
            parts.append(f"activity {self.activity.value}")
        condition = " and ".join(parts) or "anything"
        return f"{condition} → {self.pbx.value} ({self.origin})"


@dataclass(frozen=True, slots=True)
class PbxToTeamsRule:
    """Line state and/or PBX presence → a write on one Teams channel (None: write nothing)."""

    channel: Channel
    teams: TeamsPresence | None
    line_state: LineState | None = None
    pbx_presence: PbxPresence | None = None
    lifetime: timedelta | None = None
    origin: str = field(default="default", compare=False)

    @property
    def specificity(self) -> int:
        """Higher wins: both fields, then line state alone, then PBX presence alone."""
        return (2 if self.line_state is not None else 0) + (1 if self.pbx_presence else 0)

    @property
    def condition(self) -> tuple[Channel, LineState | None, PbxPresence | None]:
        """The part of the rule that decides whether it matches."""
        return (self.channel, self.line_state, self.pbx_presence)

    def matches(self, line_state: LineState, pbx_presence: PbxPresence) -> bool:
        """Whether this rule applies to the given line state and PBX presence."""
        return (self.line_state is None or self.line_state is line_state) and (
            self.pbx_presence is None or self.pbx_presence is pbx_presence
        )

    def describe(self) -> str:
        """A short human sentence for this rule."""
        parts = []
        if self.line_state is not None:
            parts.append(f"line {self.line_state.value}")
        if self.pbx_presence is not None:
            parts.append(f"PBX presence {self.pbx_presence.value}")
        condition = " and ".join(parts) or "anything"
        target = "nothing" if self.teams is None else str(self.teams)
        lifetime = f" for {format_duration(self.lifetime)}" if self.lifetime else ""
        return f"{condition} → {self.channel.value} {target}{lifetime} ({self.origin})"


@dataclass(frozen=True, slots=True)
class CalendarToPbxRule:
    """A calendar event's `showAs` → PBX presence while the event lasts (online: nothing)."""

    show_as: ShowAs
    pbx: PbxPresence
    origin: str = field(default="default", compare=False)

    @property
    def specificity(self) -> int:
        """Every calendar rule names exactly one `showAs`."""
        return 1

    @property
    def condition(self) -> ShowAs:
        """The part of the rule that decides whether it matches."""
        return self.show_as

    def describe(self) -> str:
        """A short human sentence for this rule."""
        return f"showAs {self.show_as.value} → {self.pbx.value} ({self.origin})"


# docs/calendar.md: a meeting (busy, tentative) shows as the Teams table shows InAMeeting,
# out of office and working elsewhere as away.
DEFAULT_CALENDAR_TO_PBX: tuple[CalendarToPbxRule, ...] = (
    CalendarToPbxRule(ShowAs.BUSY, PbxPresence.MEETING),
    CalendarToPbxRule(ShowAs.TENTATIVE, PbxPresence.MEETING),
    CalendarToPbxRule(ShowAs.OOF, PbxPresence.AWAY),
    CalendarToPbxRule(ShowAs.WORKING_ELSEWHERE, PbxPresence.AWAY),
)
# Free and unknown events never claim the person's time (issue 22): no rule may show them.
CALENDAR_RULE_SHOW_AS = frozenset(rule.show_as for rule in DEFAULT_CALENDAR_TO_PBX)


@dataclass(frozen=True, slots=True)
class MappingRuleSet:
    """All rules of every direction, in the order they were declared."""

    teams_to_pbx: tuple[TeamsToPbxRule, ...]
    pbx_to_teams: tuple[PbxToTeamsRule, ...]
    calendar_to_pbx: tuple[CalendarToPbxRule, ...] = DEFAULT_CALENDAR_TO_PBX


@dataclass(frozen=True, slots=True)
class MappingOverlay:
    """Overrides for one tenant or PBX connection, laid over the rules beneath them."""

    teams_to_pbx: tuple[TeamsToPbxRule, ...] = ()
    pbx_to_teams: tuple[PbxToTeamsRule, ...] = ()
    replace: bool = False
    calendar_to_pbx: tuple[CalendarToPbxRule, ...] = ()


def _t2p(pbx: PbxPresence, *, availability: str | None = None, activity: str | None = None) -> (
    TeamsToPbxRule
):
    return TeamsToPbxRule(
        pbx=pbx,
        availability=Availability(availability) if availability else None,
        activity=Activity(activity) if activity else None,
    )


_P = PbxPresence
# The innovaphone default table (docs/mapping.md). Values that are both an
# availability and an activity there (Away, Busy, ...) are matched on availability; the
# activity-only values (InACall, Presenting, ...) are matched on activity, which is more
# specific. AvailableIdle/BusyIdle are treated like Available/Busy (Imagicle).
DEFAULT_TEAMS_TO_PBX: tuple[TeamsToPbxRule, ...] = (
    _t2p(_P.AWAY, availability="Away"),
    _t2p(_P.AWAY, availability="BeRightBack"),
    _t2p(_P.BUSY, availability="Busy"),
    _t2p(_P.BUSY, availability="BusyIdle"),
    _t2p(_P.DND, availability="DoNotDisturb"),
    _t2p(_P.ON_THE_PHONE, activity="InACall"),
    _t2p(_P.MEETING, activity="InAMeeting"),
    _t2p(_P.ONLINE, activity="Inactive"),
    _t2p(_P.ONLINE, availability="PresenceUnknown"),
    _t2p(_P.ONLINE, availability="Available"),
    _t2p(_P.ONLINE, availability="AvailableIdle"),
    _t2p(_P.ONLINE, availability="Offline"),
    _t2p(_P.ONLINE, activity="OffWork"),
    _t2p(_P.AWAY, activity="OutOfOffice"),
    _t2p(_P.DND, activity="UrgentInterruptionsOnly"),
    _t2p(_P.ON_THE_PHONE, activity="Presenting"),
    _t2p(_P.ON_THE_PHONE, activity="InAConferenceCall"),
)

_IN_A_CALL = TeamsPresence(Availability.BUSY, Activity.IN_A_CALL)
_SESSION_LIFETIME = timedelta(minutes=15)


def _pref(pbx: PbxPresence, teams: TeamsPresence | None, days: int | None) -> PbxToTeamsRule:
    lifetime = timedelta(days=days) if days else None
    return PbxToTeamsRule(Channel.PREFERRED, teams, pbx_presence=pbx, lifetime=lifetime)


# mapping.md "PBX → Teams": calls become our presence session (refreshed while the call
# lasts), PBX presence becomes the preferred presence with innovaphone's lifetimes.
DEFAULT_PBX_TO_TEAMS: tuple[PbxToTeamsRule, ...] = (
    PbxToTeamsRule(Channel.SESSION, _IN_A_CALL, LineState.ON_THE_PHONE, None, _SESSION_LIFETIME),
    PbxToTeamsRule(Channel.SESSION, _IN_A_CALL, LineState.HELD, None, _SESSION_LIFETIME),
    PbxToTeamsRule(Channel.SESSION, None, LineState.RINGING),
    PbxToTeamsRule(Channel.SESSION, None, LineState.IDLE),
    _pref(_P.AWAY, TeamsPresence(Availability.AWAY, Activity.AWAY), 7),
    _pref(_P.BUSY, TeamsPresence(Availability.BUSY, Activity.BUSY), 1),
    _pref(_P.DND, TeamsPresence(Availability.DO_NOT_DISTURB, Activity.DO_NOT_DISTURB), 1),
    _pref(_P.ON_THE_PHONE, TeamsPresence(Availability.BUSY, Activity.BUSY), 1),
    _pref(_P.MEETING, None, None),
    _pref(_P.ONLINE, None, None),
)

_Rule = TypeVar("_Rule", TeamsToPbxRule, PbxToTeamsRule, CalendarToPbxRule)

DEFAULT_RULES = MappingRuleSet(DEFAULT_TEAMS_TO_PBX, DEFAULT_PBX_TO_TEAMS,
                               DEFAULT_CALENDAR_TO_PBX)


def apply_overlays(base: MappingRuleSet, *overlays: MappingOverlay) -> MappingRuleSet:
    """Lay overlays over `base` in order: a rule with the same condition replaces, else adds."""
    teams_to_pbx = list(base.teams_to_pbx)
    pbx_to_teams = list(base.pbx_to_teams)
    calendar_to_pbx = list(base.calendar_to_pbx)
    for overlay in overlays:
        if overlay.replace:
            teams_to_pbx, pbx_to_teams = [], []
            # Documents written before the calendar rules existed have none: replacing
            # with nothing would silently switch calendar presence off.
            if overlay.calendar_to_pbx:
                calendar_to_pbx = []
        teams_to_pbx = _merge(teams_to_pbx, overlay.teams_to_pbx)
        pbx_to_teams = _merge(pbx_to_teams, overlay.pbx_to_teams)
        calendar_to_pbx = _merge(calendar_to_pbx, overlay.calendar_to_pbx)
    return MappingRuleSet(tuple(teams_to_pbx), tuple(pbx_to_teams), tuple(calendar_to_pbx))


def _merge(rules: list[_Rule], updates: tuple[_Rule, ...]) -> list[_Rule]:
    position: dict[object, int] = {rule.condition: index for index, rule in enumerate(rules)}
    merged = list(rules)
    for rule in updates:
        index = position.get(rule.condition)
        if index is None:
            position[rule.condition] = len(merged)
            merged.append(rule)
        else:
            merged[index] = rule
    return merged
