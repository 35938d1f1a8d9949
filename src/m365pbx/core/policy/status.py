"""The PBX note as the person's Teams status message, owned like the preferred presence.

Teams keeps one status message per person, and it is also where the person types their
own. So m365pbx writes the PBX note there only while Teams shows no message or still
shows ours, and clears only a message that is still ours (mapping.md "Who owns the
preferred presence", applied to the note); each write follows a direct read of what Teams
shows, as a notification or poll may be minutes old. Our text counts as confirmed once Teams shows
it back; a different message after that is the person's, and we stay away from it until
the PBX note changes. Graph often leaves `statusMessage` out of an answer (notifications,
getPresencesByUserId): such a reading says nothing about the message.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from m365pbx.core.mapping import Channel
from m365pbx.core.policy.state import PersonState, PolicyConfig, StatusWrite, TeamsReading
from m365pbx.core.presence import LineState, PbxPresence

# Teams refuses longer status messages (the Teams client's limit; m365sim enforces it).
STATUS_MESSAGE_MAX = 280
# Phones fill the PIDF note with the presence's own name (mapping.md's SIP table: "Away",
# "Do not disturb", ...); as a Teams status message that says nothing the status does not.
_PRESENCE_NAMES = frozenset({
    "online", "available", "offline", "away", "busy", "dnd", "do not disturb",
    "on the phone", "on-the-phone", "in a call", "meeting", "in a meeting",
})


@dataclass(frozen=True, slots=True)
class StatusAction:
    """Set the Teams status message to `text` for `lifetime` seconds ("" clears ours)."""

    text: str
    lifetime: float | None = None


def status_text(note: str) -> str:
    """The note fit for Teams: one line, at most 280 characters, "" if it names the presence."""
    text = " ".join(note.split())
    if text.casefold() in _PRESENCE_NAMES:
        return ""
    if len(text) > STATUS_MESSAGE_MAX:
        text = text[: STATUS_MESSAGE_MAX - 1].rstrip() + "…"
    return text


def observe_status(
    state: PersonState, reading: TeamsReading, now: float, config: PolicyConfig
) -> PersonState:
    """Take what a Teams reading says about the status message (confirmation or override)."""
    ours = state.status
    message = reading.status_message
    if ours is None or message is None or not ours.active(now):
        return state
    if message == ours.text:
        return state if ours.confirmed else replace(state, status=replace(ours, confirmed=True))
    if not ours.confirmed or ours.wrote(message, now, config.echo_window):
        # A reading from before our write, or the echo of an earlier text of ours.
        return state
    return replace(state, status=None, status_overridden=True)


def _target(state: PersonState, config: PolicyConfig, line: LineState,
            pbx: PbxPresence) -> tuple[str, float | None]:
    own = state.pbx_own
    if not config.push_pbx_note or own is None:
        return "", None
    text = status_text(own.note)
    if not text:
        return "", None
    _presence, lifetime = config.mapping.target(Channel.PREFERRED, line, pbx)
    # mapping.md: the note lasts as long as the presence it came with.
    return text, lifetime if lifetime is not None else config.status_message_lifetime


@dataclass(frozen=True, slots=True)
class StatusDecision:
    """The status-message part of a plan."""

    action: StatusAction | None = None
    wake_at: float | None = None
    # We would write, but no reading has told us what Teams shows: read it first.
    needs_reading: bool = False


_NONE = StatusDecision()


def _wanted(state: PersonState, now: float, config: PolicyConfig, line: LineState,
            pbx: PbxPresence) -> StatusDecision:
    """What the PBX note asks of the status message, before asking whose message it is."""
    text, lifetime = _target(state, config, line, pbx)
    current = state.status
    ours = current if current is not None and current.active(now) else None
    if not text:
        return _NONE if ours is None else StatusDecision(StatusAction(""))
    if ours is not None and ours.text == text:
        if ours.expires_at is None:
            return _NONE
        refresh_at = ours.expires_at - config.refresh_margin
        if now < refresh_at:
            return StatusDecision(wake_at=refresh_at)
    return StatusDecision(StatusAction(text, lifetime))


def status_action(
    state: PersonState, now: float, config: PolicyConfig, line: LineState, pbx: PbxPresence
) -> StatusDecision:
    """What to write to the status message now, and when to look again."""
    wanted = _wanted(state, now, config, line, pbx)
    if wanted.action is None or not config.respect_manual_teams:
        return wanted
    if state.status_overridden:
        return _NONE
    shown = state.teams.status_message if state.teams is not None else None
    read_at = state.teams_read_at
    if shown is None or read_at is None or now > read_at + config.status_read_fresh:
        # The person may have typed their own message since we last knew: look first.
        return StatusDecision(needs_reading=True)
    current = state.status
    if shown and (current is None or not current.wrote(shown, now, config.echo_window)):
        # Teams shows a message we did not write: the person's own.
        return _NONE
    return wanted


def record_status_written(
    state: PersonState, text: str, lifetime: float | None, now: float, config: PolicyConfig
) -> PersonState:
    """Remember the status message we just wrote ("" once we cleared ours)."""
    earlier: tuple[tuple[str, float], ...] = ()
    previous = state.status
    if previous is not None:
        window = config.echo_window
        kept = [(t, at) for t, at in previous.earlier if now < at + window and t != text]
        if previous.text and previous.text != text:
            # Its echo may still arrive; an empty message is never counted as ours once
            # confirmed, so the person clearing ours is seen.
            kept.append((previous.text, now))
        earlier = tuple(kept)
    expires = None if lifetime is None or not text else now + lifetime
    confirmed = previous is not None and previous.confirmed and previous.text == text
    write = StatusWrite(text, now, expires, confirmed, earlier)
    return replace(state, status=write, status_overridden=False)
