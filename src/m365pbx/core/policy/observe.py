"""Fold new readings and our completed writes into a PersonState.

Each `observe_*` rejects a reading older than the one it already has (sequence, else
time) and returns `(state, accepted)`. Readings that merely echo our own writes are kept
as the newest reading but do not become the person's own state: that is the loop guard.
"""

from __future__ import annotations

from dataclasses import replace

from m365pbx.core.policy.state import (
    CalendarBlock,
    LineReading,
    PbxReading,
    PbxWrite,
    PersonState,
    PolicyConfig,
    PreferredWrite,
    SessionWrite,
    TeamsReading,
)
from m365pbx.core.policy.status import observe_status
from m365pbx.core.presence import Activity, Availability, PbxPresence, TeamsPresence

# States a Teams client only shows when the person picked them: a preferred presence.
PERSON_CHOSEN = frozenset(
    {
        TeamsPresence(Availability.BUSY, Activity.BUSY),
        TeamsPresence(Availability.DO_NOT_DISTURB, Activity.DO_NOT_DISTURB),
        TeamsPresence(Availability.BE_RIGHT_BACK, Activity.BE_RIGHT_BACK),
        TeamsPresence(Availability.OFFLINE, Activity.OFF_WORK),
    }
)
# States that may be a choice the person made, though a client shows them too: "Appear
# away" is Away/Away exactly like an idle client. We write nothing over them (the person's
# hand may be in it); a client that becomes active again shows Available and frees them.
MAYBE_CHOSEN = PERSON_CHOSEN | {TeamsPresence(Availability.AWAY, Activity.AWAY)}
# Presence that Teams shows even while a preferred presence is in force: no session left
# (Offline) or the mailbox's out-of-office. graph.md 3.9: the preferred presence beats
# every session-level state, meetings included; how OOF combines is undocumented.
_NOT_A_CHOICE_AVAILABILITY = frozenset({Availability.OFFLINE, Availability.PRESENCE_UNKNOWN})
_NOT_A_CHOICE_ACTIVITY = frozenset({Activity.OUT_OF_OFFICE})


def is_echo(state: PersonState, presence: TeamsPresence, now: float, config: PolicyConfig) -> bool:
    """Whether `presence` is what our own session or preferred write makes Teams show."""
    session = state.session
    if session is not None and session.presence == presence:
        if session.active(now):
            return True
        if session.ended_at is not None and now < session.ended_at + config.echo_window:
            return True
    preferred = state.preferred
    return preferred is not None and preferred.presence == presence and preferred.active(now)


def _newer_teams(current: TeamsReading | None, reading: TeamsReading) -> bool:
    if current is None:
        return True
    if reading.sequence and current.sequence:
        return reading.sequence >= current.sequence
    return reading.at >= current.at


def _newer(current: PbxReading | LineReading | None, reading: PbxReading | LineReading) -> bool:
    if current is None:
        return True
    if reading.sequence and current.sequence:
        return reading.sequence >= current.sequence
    return reading.at >= current.at


def _preferred_gone(state: PersonState, reading: TeamsReading, now: float) -> bool:
    """Whether Teams shows a session of ours although our preferred presence should beat it.

    A preferred presence beats every session (graph.md 3.9), so our call session showing
    through means the person cleared ours in Teams; it is no echo then.
    """
    preferred = state.preferred
    return (preferred is not None and preferred.active(now)
            and preferred.presence != reading.presence
            and reading.at >= preferred.written_at)


def observe_teams(
    state: PersonState, reading: TeamsReading, now: float, config: PolicyConfig
) -> tuple[PersonState, bool]:
    """Take a Teams reading; an echo of our write is kept apart from the person's own state."""
    if not _newer_teams(state.teams, reading):
        return state, False
    if reading.direct:
        state = replace(state, teams_read_at=reading.at, teams_read_outdated=False)
    current = state.teams
    if current is not None and reading.sequence and reading.sequence == current.sequence:
        # The same version of the presence again (a poll answer sent before our last write
        # can arrive after it): nothing changed, so it must not count as the person's doing.
        if reading.status_message is None or current.status_message is not None:
            return state, True
        # A direct read of the same version can add the status message a notification left out.
        state = observe_status(state, reading, now, config)
        teams = replace(current, status_message=reading.status_message)
        own = state.teams_own
        if own is not None and own.sequence == reading.sequence:
            own = replace(own, status_message=reading.status_message)
        return replace(state, teams=teams, teams_own=own,
                       teams_message=reading.status_message), True
    if reading.status_message is not None:
        state = replace(observe_status(state, reading, now, config),
                        teams_message=reading.status_message)
    if is_echo(state, reading.presence, now, config) and not _preferred_gone(state, reading, now):
        preferred = state.preferred
        ours = (preferred is not None and preferred.presence == reading.presence
                and preferred.active(now))
        return replace(state, teams=reading, teams_shows_ours=ours), True
    overridden = state.preferred_overridden
    preferred = state.preferred
    if (
        preferred is not None
        and preferred.active(now)
        # A reading asked for before our write completed shows what Teams held before it.
        and reading.at >= preferred.written_at
        and reading.presence.availability not in _NOT_A_CHOICE_AVAILABILITY
        and reading.presence.activity not in _NOT_A_CHOICE_ACTIVITY
    ):
        # Our preferred presence beats every session, so a different state means the
        # person chose another one in Teams (mapping.md "Who owns the preferred presence"):
        # ours is gone, and we write no more until the PBX presence changes.
        overridden = True
        preferred = None
    choice = state.person_choice
    if reading.presence in MAYBE_CHOSEN:
        choice = reading.presence
    elif (
        reading.presence.availability not in _NOT_A_CHOICE_AVAILABILITY
        and reading.presence.activity not in _NOT_A_CHOICE_ACTIVITY
    ):
        # Teams shows an ordinary client state, so no preferred presence is in force.
        choice = None
    return replace(
        state,
        teams=reading,
        teams_shows_ours=False,
        teams_own=reading,
        teams_read_outdated=state.teams_read_outdated or not reading.direct,
        preferred=preferred,
        preferred_overridden=overridden,
        person_choice=choice,
    ), True


def observe_pbx(
    state: PersonState, reading: PbxReading, now: float, config: PolicyConfig
) -> tuple[PersonState, bool]:
    """Take a PBX presence reading; what we wrote ourselves coming back is an echo."""
    if not _newer(state.pbx, reading):
        return state, False
    wrote = state.wrote_pbx
    # "online" is never taken for our echo: it says the person holds no presence of their own
    # in the PBX (a PBX shows a person's away/dnd over what we wrote, and SIP readings skip our
    # own PIDF elements). Taken as an echo, an online coming within the window of an online we
    # wrote left their earlier away standing, and our preferred Away with it (issue 18 §1).
    if (
        wrote is not None
        and reading.presence is not PbxPresence.ONLINE
        and wrote.presence is reading.presence
        and now < wrote.written_at + config.echo_window
    ):
        return replace(state, pbx=reading), True
    own = state.pbx_own
    changed = own is None or own.presence is not reading.presence
    new_note = own is None or own.note != reading.note
    return replace(
        state,
        pbx=reading,
        pbx_own=reading,
        # A new PBX presence is a new request: the person's old Teams choice no longer blocks it.
        preferred_overridden=state.preferred_overridden and not changed,
        teams_read_outdated=state.teams_read_outdated or changed,
        status_overridden=state.status_overridden and not new_note,
    ), True


def observe_line(state: PersonState, reading: LineReading) -> tuple[PersonState, bool]:
    """Take a line-state reading; `line_since` moves only when the state changes."""
    if not _newer(state.line, reading):
        return state, False
    since = state.line_since
    if state.line is None or state.line.state is not reading.state:
        since = reading.at
    return replace(state, line=reading, line_since=since), True


def set_calendar(state: PersonState, blocks: tuple[CalendarBlock, ...]) -> PersonState:
    """Replace the calendar blocks (sorted by start) that may show in the PBX."""
    return replace(state, calendar=tuple(sorted(blocks, key=lambda b: (b.start, b.end))))


def record_pbx_written(
    state: PersonState, presence: PbxPresence, note: str, now: float
) -> PersonState:
    """Remember that the PBX now shows `presence` because we wrote it."""
    return replace(state, wrote_pbx=PbxWrite(presence, note, now))


def record_session_set(
    state: PersonState, presence: TeamsPresence, lifetime: float, now: float
) -> PersonState:
    """Remember the setPresence session we just wrote (or refreshed)."""
    return replace(state, session=SessionWrite(presence, now, now + lifetime))


def record_session_cleared(state: PersonState, now: float) -> PersonState:
    """Remember that our session is gone (cleared, or found missing in Teams)."""
    if state.session is None:
        return state
    return replace(state, session=replace(state.session, ended_at=now))


def record_preferred_set(
    state: PersonState, presence: TeamsPresence, lifetime: float | None, now: float
) -> PersonState:
    """Remember the preferred presence we just wrote on the person's behalf."""
    expires = None if lifetime is None else now + lifetime
    return replace(
        state, preferred=PreferredWrite(presence, now, expires), preferred_overridden=False
    )


def record_preferred_cleared(state: PersonState) -> PersonState:
    """Remember that no preferred presence of ours remains."""
    return replace(state, preferred=None)
