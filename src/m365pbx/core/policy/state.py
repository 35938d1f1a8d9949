"""What the policy knows about one person: readings from both sides and our own writes.

Times are POSIX seconds (floats): the policy is evaluated hundreds of thousands of times a
second and never reads a clock; callers pass `now`.
"""

from __future__ import annotations

from dataclasses import dataclass

from m365pbx.core.mapping import CompiledMapping
from m365pbx.core.presence import LineState, PbxPresence, TeamsPresence


@dataclass(frozen=True, slots=True)
class TeamsReading:
    """Teams presence as Graph reported it, with its order stamp."""

    presence: TeamsPresence
    at: float
    # Graph's presence.sequenceNumber is lexicographically sortable (graph.md 3.1).
    sequence: str = ""
    # None: this reading did not say (Graph often omits it); "": no status message.
    status_message: str | None = None
    # Read directly just now (GET presence), not a notification or a poll round.
    direct: bool = False


@dataclass(frozen=True, slots=True)
class PbxReading:
    """PBX presence as the PBX reported it, with its order stamp (0: none)."""

    presence: PbxPresence
    at: float
    note: str = ""
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class LineReading:
    """Line state as the PBX reported it, with its order stamp (0: none)."""

    state: LineState
    at: float
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class CalendarBlock:
    """A calendar event that should show in the PBX while it lasts."""

    presence: PbxPresence
    start: float
    end: float
    subject: str = ""


@dataclass(frozen=True, slots=True)
class SessionWrite:
    """Our setPresence session in Teams; `ended_at` is set once we cleared it."""

    presence: TeamsPresence
    written_at: float
    expires_at: float
    ended_at: float | None = None

    def active(self, now: float) -> bool:
        """Whether Teams still holds this session at `now`."""
        return self.ended_at is None and now < self.expires_at


@dataclass(frozen=True, slots=True)
class PreferredWrite:
    """The preferred presence we set on the person's behalf."""

    presence: TeamsPresence
    written_at: float
    expires_at: float | None

    def active(self, now: float) -> bool:
        """Whether it is still in force at `now`."""
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True, slots=True)
class StatusWrite:
    """The Teams status message we last wrote from the PBX note ("" once we cleared ours)."""

    text: str
    written_at: float
    expires_at: float | None
    # Teams has shown this text back to us: from now on, a different message is the person's.
    confirmed: bool = False
    # Texts we wrote before, with when: their notifications may still be on their way.
    earlier: tuple[tuple[str, float], ...] = ()

    def active(self, now: float) -> bool:
        """Whether our message is still in force at `now`."""
        return bool(self.text) and (self.expires_at is None or now < self.expires_at)

    def wrote(self, text: str, now: float, window: float) -> bool:
        """Whether `text` is one of ours: the current text or an earlier one still echoing."""
        if text == self.text:
            return True
        return any(old == text and now < at + window for old, at in self.earlier)


@dataclass(frozen=True, slots=True)
class PbxWrite:
    """What we last wrote to the PBX for this person."""

    presence: PbxPresence
    note: str
    written_at: float


@dataclass(frozen=True, slots=True)
class PersonState:
    """Everything the policy needs for one person; replaced, never mutated."""

    teams: TeamsReading | None = None
    # `teams` showed our preferred presence when it arrived: it stays an echo after we write
    # another value or clear ours (a direct read just before a write shows the previous one).
    teams_shows_ours: bool = False
    # The newest Teams reading that was not an echo of our own writes when it arrived.
    teams_own: TeamsReading | None = None
    # The status message as last known (readings that leave it out do not change it).
    teams_message: str | None = None
    # When we last read the person's presence directly (before writing their status message
    # or their preferred presence).
    teams_read_at: float | None = None
    # Something changed since that read (the PBX presence, or a Teams notification that was
    # not our echo): a preferred-presence write must read Teams again first.
    teams_read_outdated: bool = False
    pbx: PbxReading | None = None
    # The newest PBX reading that was not an echo of what we wrote to the PBX.
    pbx_own: PbxReading | None = None
    line: LineReading | None = None
    line_since: float = 0.0
    calendar: tuple[CalendarBlock, ...] = ()
    session: SessionWrite | None = None
    preferred: PreferredWrite | None = None
    # The person changed their preferred presence in Teams after our write: theirs stands.
    preferred_overridden: bool = False
    # The last state only a person's own choice produces (Busy, DND, BRB, Appear offline),
    # or may be one (Away); kept while Teams shows nothing that would reveal it was cleared
    # (e.g. Offline).
    person_choice: TeamsPresence | None = None
    wrote_pbx: PbxWrite | None = None
    # Our status message in Teams (from the PBX note), and whether the person replaced it.
    status: StatusWrite | None = None
    status_overridden: bool = False


DEFAULT_SESSION_LIFETIME = 900.0
"""Seconds a presence session lasts when no mapping rule gives a lifetime (the one default)."""


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Switches of the policy; every default is the product default (mapping.md)."""

    mapping: CompiledMapping
    push_line_state: bool = True
    push_pbx_presence: bool = True
    # Telia's behaviour: a call only replaces a Teams status of Available or Busy.
    only_replace_available_busy: bool = False
    # False is "PBX wins": write the preferred presence even over the person's own choice.
    respect_manual_teams: bool = True
    call_end_hold_down: float = 1.0
    pbx_hold_down: float = 0.0
    refresh_margin: float = 60.0
    # Our writes come back through Graph notifications up to minutes later (graph.md 3.9).
    echo_window: float = 180.0
    status_message_as_note: bool = True
    calendar_subject_as_note: bool = True
    default_session_lifetime: float = DEFAULT_SESSION_LIFETIME
    # The PBX note as the Teams status message (mapping.md: "where enabled"; off by default).
    push_pbx_note: bool = False
    # How long a note lasts when its PBX presence has no preferred-presence lifetime.
    status_message_lifetime: float = 86400.0
    # A status message is written only right after reading what Teams shows: the person
    # may have typed their own since the last notification or poll.
    status_read_fresh: float = 5.0
    # Likewise the preferred presence: written or cleared only right after a direct read
    # made after every change we heard of (notifications arrive 1-60 s late; the person
    # may have picked their own since the last one).
    preferred_read_fresh: float = 5.0
