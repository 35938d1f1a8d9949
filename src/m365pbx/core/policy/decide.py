"""Decide what to write to each side for one person, from their state and `now`.

`decide` returns a Plan: at most one PBX write, one session action, one preferred
presence action and one status-message action, plus `wake_at`, the earliest time the
answer can change without new input (a hold-down ending, a session needing its refresh, a
calendar event starting). A plan
with no actions after its writes were recorded is the fixpoint: nothing bounces.
"""

from __future__ import annotations

from dataclasses import dataclass

from m365pbx.core.mapping import Channel
from m365pbx.core.policy.observe import is_echo
from m365pbx.core.policy.state import PersonState, PolicyConfig, TeamsReading
from m365pbx.core.policy.status import StatusAction, status_action
from m365pbx.core.presence import (
    Availability,
    LineState,
    PbxPresence,
    TeamsPresence,
)

# How strongly a PBX presence claims the person; the stronger of Teams and calendar shows.
# "on-the-phone beats busy" (design.md); dnd beats everything.
PBX_RANK = {
    PbxPresence.ONLINE: 0,
    PbxPresence.AWAY: 1,
    PbxPresence.BUSY: 2,
    PbxPresence.MEETING: 3,
    PbxPresence.ON_THE_PHONE: 4,
    PbxPresence.DND: 5,
}
# Telia replaces only these Teams states with the call state (mapping.md).
REPLACEABLE_AVAILABILITY = frozenset(
    {Availability.AVAILABLE, Availability.AVAILABLE_IDLE, Availability.BUSY, Availability.BUSY_IDLE}
)
@dataclass(frozen=True, slots=True)
class PbxAction:
    """Show `presence` with `note` in the PBX (ONLINE with no note clears it)."""

    presence: PbxPresence
    note: str


@dataclass(frozen=True, slots=True)
class TeamsAction:
    """Set `presence` for `lifetime` seconds on a channel, or clear ours (presence None)."""

    channel: Channel
    presence: TeamsPresence | None
    lifetime: float | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """The writes to make now and when to look again."""

    pbx: PbxAction | None = None
    session: TeamsAction | None = None
    preferred: TeamsAction | None = None
    wake_at: float | None = None
    status: StatusAction | None = None
    # Read the person's Teams presence (with its status message) before deciding again: a
    # status message or preferred presence is written only right after such a read.
    read_teams: bool = False

    @property
    def empty(self) -> bool:
        """Whether there is nothing to write (or read) now."""
        return (self.pbx is None and self.session is None and self.preferred is None
                and self.status is None and not self.read_teams)


NOTHING = Plan()


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a < b else b


def teams_for_pbx(state: PersonState, now: float, config: PolicyConfig) -> TeamsReading | None:
    """The Teams reading that speaks for the person: the newest, unless it echoes our write."""
    reading = state.teams
    if reading is not None and (state.teams_shows_ours
                                or is_echo(state, reading.presence, now, config)):
        return state.teams_own
    return reading


def _pbx_action(
    state: PersonState, now: float, config: PolicyConfig
) -> tuple[PbxAction | None, float | None]:
    wake: float | None = None
    presence = PbxPresence.ONLINE
    note = ""
    known = False
    reading = teams_for_pbx(state, now, config)
    if reading is not None:
        known = True
        presence = config.mapping.to_pbx(reading.presence)
        if config.status_message_as_note and presence is not PbxPresence.ONLINE:
            message = reading.status_message
            note = (message if message is not None else state.teams_message) or ""
        session = state.session
        if state.teams is not reading and session is not None and session.ended_at is not None:
            # The echo guard of a cleared session lapses at the end of the window.
            lapses = session.ended_at + config.echo_window
            if lapses > now:
                wake = lapses
    for block in state.calendar:
        if block.end <= now:
            continue
        if block.start > now:
            wake = _earliest(wake, block.start)
            break
        known = True
        wake = _earliest(wake, block.end)
        if PBX_RANK[block.presence] > PBX_RANK[presence]:
            presence = block.presence
            note = block.subject if config.calendar_subject_as_note else ""
        elif block.presence is presence and not note and config.calendar_subject_as_note:
            # Teams shows the same meeting (from the same calendar) without a message: the
            # subject stays rather than vanishing at Teams' next report.
            note = block.subject
    if not known:
        return None, wake
    if presence is PbxPresence.ONLINE:
        note = ""
    wrote = state.wrote_pbx
    if wrote is None:
        if presence is PbxPresence.ONLINE:
            return None, wake
    elif wrote.presence is presence and wrote.note == note:
        return None, wake
    elif now < wrote.written_at + config.pbx_hold_down:
        return None, _earliest(wake, wrote.written_at + config.pbx_hold_down)
    return PbxAction(presence, note), wake


def _session_action(
    state: PersonState, now: float, config: PolicyConfig, line: LineState, pbx: PbxPresence
) -> tuple[TeamsAction | None, float | None]:
    target: TeamsPresence | None = None
    lifetime = config.default_session_lifetime
    if config.push_line_state:
        target, rule_lifetime = config.mapping.target(Channel.SESSION, line, pbx)
        lifetime = rule_lifetime or lifetime
    session = state.session if state.session is not None and state.session.active(now) else None
    if target is not None and session is None and config.only_replace_available_busy:
        own = state.teams_own
        if own is not None and own.presence.availability not in REPLACEABLE_AVAILABILITY:
            target = None
    if target is None:
        if session is None:
            return None, None
        # Hold the end of a call down so a transfer or the next call does not flap Teams.
        clear_at = state.line_since + config.call_end_hold_down
        if now < clear_at:
            return None, clear_at
        return TeamsAction(Channel.SESSION, None), None
    refresh_at = None if session is None else session.expires_at - config.refresh_margin
    if session is not None and session.presence == target and refresh_at is not None and (
        now < refresh_at
    ):
        return None, refresh_at
    return TeamsAction(Channel.SESSION, target, lifetime), None


def teams_known_fresh(state: PersonState, now: float, config: PolicyConfig) -> bool:
    """Whether a direct read, newer than every change we heard of, says what Teams shows now."""
    read_at = state.teams_read_at
    return (read_at is not None and not state.teams_read_outdated
            and now <= read_at + config.preferred_read_fresh)


def _preferred_action(
    state: PersonState, now: float, config: PolicyConfig, line: LineState, pbx: PbxPresence
) -> tuple[TeamsAction | None, float | None, bool]:
    """The preferred-presence action, its wake time, and whether Teams must be read first."""
    action, wake = _preferred_wanted(state, now, config, line, pbx)
    if action is not None and config.respect_manual_teams and not teams_known_fresh(
        state, now, config
    ):
        # Notifications come seconds to a minute late: the person may have picked their own
        # presence since the last one (or replaced ours). Only a direct read says (issue 18).
        return None, wake, True
    return action, wake, False


def _preferred_wanted(
    state: PersonState, now: float, config: PolicyConfig, line: LineState, pbx: PbxPresence
) -> tuple[TeamsAction | None, float | None]:
    if state.preferred_overridden and config.respect_manual_teams:
        return None, None
    target: TeamsPresence | None = None
    lifetime: float | None = None
    if config.push_pbx_presence:
        target, lifetime = config.mapping.target(Channel.PREFERRED, line, pbx)
    ours = state.preferred if state.preferred is not None and state.preferred.active(now) else None
    choice = state.person_choice
    if (
        config.respect_manual_teams
        and choice is not None
        and (ours is None or choice != ours.presence)
    ):
        # The preferred presence now holds the person's own choice: write nothing over it
        # and clear nothing of it (mapping.md "Who owns the preferred presence").
        return None, None
    if target is None:
        if ours is None:
            return None, None
        return TeamsAction(Channel.PREFERRED, None), None
    if ours is not None and ours.presence == target:
        if ours.expires_at is None:
            return None, None
        refresh_at = ours.expires_at - config.refresh_margin
        if now < refresh_at:
            return None, refresh_at
    return TeamsAction(Channel.PREFERRED, target, lifetime), None


def decide(state: PersonState, now: float, config: PolicyConfig) -> Plan:
    """Everything to write for this person at `now`, and when to look again."""
    line = state.line.state if state.line is not None else LineState.IDLE
    own_pbx = state.pbx_own.presence if state.pbx_own is not None else PbxPresence.ONLINE
    pbx, wake_pbx = _pbx_action(state, now, config)
    session, wake_session = _session_action(state, now, config, line, own_pbx)
    preferred, wake_preferred, preferred_reading = _preferred_action(state, now, config, line,
                                                                      own_pbx)
    status = status_action(state, now, config, line, own_pbx)
    wake = _earliest(_earliest(wake_pbx, wake_session),
                     _earliest(wake_preferred, status.wake_at))
    read = status.needs_reading or preferred_reading
    if (pbx is None and session is None and preferred is None and status.action is None
            and not read and wake is None):
        return NOTHING
    return Plan(pbx, session, preferred, wake, status.action, read)
