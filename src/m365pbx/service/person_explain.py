"""Why the PBX shows what it shows for one person, and what Teams gets from the PBX: the
person's present readings run through their connection's mapping (`mapping explain` for a
real person, for the admin UI)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from m365pbx.core.mapping import Channel
from m365pbx.core.policy import PolicyConfig
from m365pbx.core.presence import LineState, PbxPresence
from m365pbx.sync.hub import PresenceHub
from m365pbx.sync.people import Person


@dataclass(frozen=True)
class PersonExplanation:
    """One person's readings and the rules that decide each side."""

    teams: str | None  # the Teams presence now ("Busy / InACall"), None before a reading
    pbx_from_teams: str | None  # the PBX presence that Teams presence maps to
    teams_reason: str | None
    line: str
    pbx: str
    # (channel, what it should hold in Teams, why) for each PBX → Teams channel
    to_teams: list[tuple[str, str, str]] = field(default_factory=list)
    # (start, end, PBX presence, subject) of the calendar events the PBX shows or will show
    calendar: list[tuple[datetime, datetime, str, str]] = field(default_factory=list)


def explain_person(hub: PresenceHub, policy_for: Callable[[Person], PolicyConfig],
                   person_id: int) -> PersonExplanation | None:
    """Explain one matched person (None: nobody with that id)."""
    person = next((p for p in hub.people() if p.id == person_id), None)
    if person is None:
        return None
    mapping = policy_for(person).mapping
    state = hub.state_of(person_id)
    teams = None if state is None or state.teams is None else state.teams.presence
    line = LineState.IDLE if state is None or state.line is None else state.line.state
    pbx = PbxPresence.ONLINE if state is None or state.pbx is None else state.pbx.presence
    to_teams = []
    for channel in Channel:
        write = mapping.to_teams(channel, line, pbx)
        target = "nothing (ours cleared)" if write.presence is None else str(write.presence)
        to_teams.append((channel.value, target, mapping.explain_pbx(channel, line, pbx).reason))
    return PersonExplanation(
        teams=None if teams is None else str(teams),
        pbx_from_teams=None if teams is None else mapping.to_pbx(teams).value,
        teams_reason=None if teams is None else mapping.explain_teams(teams).reason,
        line=line.value, pbx=pbx.value, to_teams=to_teams,
        calendar=[] if state is None else [
            (datetime.fromtimestamp(b.start, UTC), datetime.fromtimestamp(b.end, UTC),
             b.presence.value, b.subject) for b in sorted(state.calendar, key=lambda b: b.start)])
