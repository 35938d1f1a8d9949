"""The mapping in effect per PBX connection (defaults, then the tenant's and the
connection's overlays from the configuration), and `mapping explain` over it, for the
admin UI's mapping page."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from m365pbx.config import Settings
from m365pbx.core.mapping import (
    DEFAULT_RULES,
    Channel,
    CompiledMapping,
    apply_overlays,
    parse_mapping_overlay,
)
from m365pbx.core.presence import (
    Activity,
    Availability,
    LineState,
    PbxPresence,
    ShowAs,
    TeamsPresence,
)


def connection_mappings(settings: Settings) -> dict[str, CompiledMapping]:
    """Each PBX connection's compiled mapping, as the service builds its policy."""
    tenants = {t.name: t for t in settings.tenants}
    found = {}
    for connection in settings.pbx_connections:
        tenant = tenants[connection.tenant]
        overlays = [parse_mapping_overlay(tenant.mapping, source=f"tenant {tenant.name}"),
                    parse_mapping_overlay(connection.mapping,
                                          source=f"connection {connection.name}")]
        found[connection.name] = CompiledMapping(apply_overlays(DEFAULT_RULES, *overlays))
    return found


@dataclass(frozen=True)
class Question:
    """What the admin asks: a Teams presence, a line state with a PBX presence, and a
    calendar event's showAs."""

    availability: Availability = Availability.BUSY
    activity: Activity = Activity.IN_A_CALL
    line: LineState = LineState.IDLE
    pbx: PbxPresence = PbxPresence.ONLINE
    show_as: ShowAs = ShowAs.BUSY

    @classmethod
    def parse(cls, availability: str, activity: str, line: str, pbx: str,
              show_as: str = "") -> Question:
        """From the form's values; an unknown or missing one keeps its default."""
        default = cls()
        return cls(_pick(Availability, availability, default.availability),
                   _pick(Activity, activity, default.activity),
                   _pick(LineState, line, default.line),
                   _pick(PbxPresence, pbx, default.pbx),
                   _pick(ShowAs, show_as, default.show_as))


E = TypeVar("E", bound=StrEnum)


def _pick(kind: type[E], value: str, fallback: E) -> E:
    try:
        return kind(value)
    except ValueError:
        return fallback


@dataclass(frozen=True)
class Answer:
    """What the mapping makes of a question, with the deciding rules in words."""

    pbx: str
    pbx_reason: str
    teams: list[tuple[str, str, str]] = field(default_factory=list)  # channel, target, why
    calendar: str = ""
    calendar_reason: str = ""


def answer(mapping: CompiledMapping, question: Question) -> Answer:
    """`mapping explain` for both directions and the calendar at once."""
    presence = TeamsPresence(question.availability, question.activity)
    teams = []
    for channel in Channel:
        write = mapping.to_teams(channel, question.line, question.pbx)
        target = "nothing (ours cleared)" if write.presence is None else str(write.presence)
        teams.append((channel.value, target,
                      mapping.explain_pbx(channel, question.line, question.pbx).reason))
    return Answer(mapping.to_pbx(presence).value, mapping.explain_teams(presence).reason, teams,
                  mapping.calendar_to_pbx(question.show_as).value,
                  mapping.explain_calendar(question.show_as).reason)
