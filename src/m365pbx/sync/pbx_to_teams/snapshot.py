"""What of a person's state survives a restart, and how it is put back.

A Snapshot holds our writes to Teams (the presence session, the preferred presence and
whose choice the preferred presence holds) and the last readings of both sides. It is
pure data: `service/session_store.py` stores it, `merge` folds it into the state the
hub already holds for the person when they become known again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from m365pbx.core.policy import (
    LineReading,
    PbxReading,
    PersonState,
    PreferredWrite,
    SessionWrite,
    StatusWrite,
    TeamsReading,
)
from m365pbx.core.presence import (
    Activity,
    Availability,
    LineState,
    PbxPresence,
    TeamsPresence,
)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The part of a PersonState that must survive a restart."""

    session: SessionWrite | None = None
    preferred: PreferredWrite | None = None
    preferred_overridden: bool = False
    person_choice: TeamsPresence | None = None
    teams_own: TeamsReading | None = None
    line: LineReading | None = None
    line_since: float = 0.0
    pbx_own: PbxReading | None = None
    status: StatusWrite | None = None
    status_overridden: bool = False

    @property
    def in_call(self) -> bool:
        """Whether the saved line state is anything but idle."""
        return self.line is not None and self.line.state is not LineState.IDLE


def snapshot_of(state: PersonState, now: float) -> Snapshot:
    """The saved form of `state` at `now`: a lapsed session or preferred presence is dropped."""
    session = state.session if state.session is not None and state.session.active(now) else None
    preferred = (state.preferred if state.preferred is not None and state.preferred.active(now)
                 else None)
    status = state.status if state.status is not None and state.status.active(now) else None
    if status is not None:
        status = replace(status, earlier=())
    return Snapshot(session, preferred, state.preferred_overridden, state.person_choice,
                    state.teams_own, state.line, state.line_since, state.pbx_own, status,
                    state.status_overridden)


def merge(current: PersonState, saved: Snapshot) -> PersonState:
    """Fold a saved snapshot under what the hub learnt since the restart (which wins).

    Sequence stamps are dropped from restored readings: a PBX or app that restarted too
    counts from 1 again, and its first report must not be refused as older than ours.
    """
    state = current
    if state.line is None and saved.line is not None:
        state = replace(state, line=replace(saved.line, sequence=0), line_since=saved.line_since)
    if state.pbx_own is None and saved.pbx_own is not None:
        pbx = replace(saved.pbx_own, sequence=0)
        state = replace(state, pbx=state.pbx or pbx, pbx_own=pbx)
    if state.session is None and saved.session is not None:
        state = replace(state, session=saved.session)
    if state.teams is None:
        teams = None if saved.teams_own is None else replace(saved.teams_own, sequence="")
        state = replace(state, teams=teams, teams_own=teams,
                        preferred_overridden=saved.preferred_overridden,
                        person_choice=saved.person_choice)
    if state.preferred is None and saved.preferred is not None and not state.preferred_overridden:
        state = replace(state, preferred=saved.preferred)
    if state.status is None and not state.status_overridden:
        state = replace(state, status=saved.status, status_overridden=saved.status_overridden)
    return state


# --- stored values (JSON objects in the store's last_presence rows) -------------------------

def _presence(value: TeamsPresence | None) -> dict[str, str] | None:
    if value is None:
        return None
    return {"availability": value.availability.value, "activity": value.activity.value}


def _read_presence(value: Any) -> TeamsPresence | None:
    if not isinstance(value, dict):
        return None
    try:
        return TeamsPresence(Availability(value["availability"]), Activity(value["activity"]))
    except (KeyError, ValueError):
        return None


def pbx_values(saved: Snapshot) -> dict[str, Any]:
    """What was last seen from the PBX: line state (and since when) and PBX presence."""
    line = None if saved.line is None else {
        "state": saved.line.state.value, "at": saved.line.at, "since": saved.line_since}
    presence = None if saved.pbx_own is None else {
        "presence": saved.pbx_own.presence.value, "note": saved.pbx_own.note,
        "at": saved.pbx_own.at}
    return {"line": line, "presence": presence}


def teams_seen_values(saved: Snapshot) -> dict[str, Any]:
    """The person's own Teams presence as last read (not an echo of our writes)."""
    own = saved.teams_own
    if own is None:
        return {"presence": None}
    return {"presence": {**(_presence(own.presence) or {}), "at": own.at,
                         "status_message": own.status_message}}


def teams_written_values(saved: Snapshot) -> dict[str, Any]:
    """Our preferred presence and status message, and whose choice Teams holds in each."""
    preferred = None if saved.preferred is None else {
        **(_presence(saved.preferred.presence) or {}), "written_at": saved.preferred.written_at,
        "expires_at": saved.preferred.expires_at}
    status = None if saved.status is None else {
        "text": saved.status.text, "written_at": saved.status.written_at,
        "expires_at": saved.status.expires_at, "confirmed": saved.status.confirmed}
    return {"preferred": preferred, "overridden": saved.preferred_overridden,
            "person_choice": _presence(saved.person_choice), "status": status,
            "status_overridden": saved.status_overridden}


def _status(value: Any) -> StatusWrite | None:
    if not isinstance(value, dict) or not isinstance(value.get("text"), str):
        return None
    expires = value.get("expires_at")
    return StatusWrite(value["text"], _number(value.get("written_at")),
                       float(expires) if isinstance(expires, int | float) else None,
                       bool(value.get("confirmed", False)))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any, default: float = 0.0) -> float:
    return float(value) if isinstance(value, int | float) else default


def snapshot_from_values(
    session: SessionWrite | None,
    pbx: dict[str, Any] | None,
    teams_seen: dict[str, Any] | None,
    teams_written: dict[str, Any] | None,
) -> Snapshot:
    """A Snapshot from stored values; anything unreadable is left out (never guessed)."""
    line = since = None
    pbx_own = None
    raw_line = (pbx or {}).get("line")
    if isinstance(raw_line, dict):
        try:
            line = LineReading(LineState(raw_line["state"]), _number(raw_line.get("at")))
            since = _number(raw_line.get("since"), line.at)
        except (KeyError, ValueError):
            line = None
    raw_presence = (pbx or {}).get("presence")
    if isinstance(raw_presence, dict):
        try:
            pbx_own = PbxReading(PbxPresence(raw_presence["presence"]),
                                 _number(raw_presence.get("at")),
                                 str(raw_presence.get("note") or ""))
        except (KeyError, ValueError):
            pbx_own = None
    teams_own = None
    raw_teams = (teams_seen or {}).get("presence")
    seen = _read_presence(raw_teams)
    if seen is not None and isinstance(raw_teams, dict):
        teams_own = TeamsReading(seen, _number(raw_teams.get("at")),
                                 status_message=_text(raw_teams.get("status_message")))
    written = teams_written or {}
    preferred = None
    raw_preferred = written.get("preferred")
    chosen = _read_presence(raw_preferred)
    if chosen is not None and isinstance(raw_preferred, dict):
        expires = raw_preferred.get("expires_at")
        preferred = PreferredWrite(chosen, _number(raw_preferred.get("written_at")),
                                   float(expires) if isinstance(expires, int | float) else None)
    return Snapshot(
        session=session, preferred=preferred,
        preferred_overridden=bool(written.get("overridden", False)),
        person_choice=_read_presence(written.get("person_choice")),
        teams_own=teams_own, line=line, line_since=since or 0.0, pbx_own=pbx_own,
        status=_status(written.get("status")),
        status_overridden=bool(written.get("status_overridden", False)),
    )
