"""The mapping in effect per PBX connection (defaults, then the tenant's and the
connection's overlays from the configuration, then the admin UI's overlay), and
`mapping explain` over it, for the admin UI's mapping page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import yaml

from m365pbx.config import Settings
from m365pbx.core.mapping import (
    DEFAULT_RULES,
    Channel,
    CompiledMapping,
    MappingError,
    MappingOverlay,
    MappingRuleSet,
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

UI_SOURCE = "admin UI"
"""Where the rules of an overlay edited in the admin UI say they come from."""


def connection_mappings(settings: Settings,
                        ui_overlays: Mapping[str, MappingOverlay] | None = None
                        ) -> dict[str, CompiledMapping]:
    """Each PBX connection's compiled mapping, as the service builds its policy."""
    return {c.name: CompiledMapping(rules_of(settings, c.name, (ui_overlays or {}).get(c.name)))
            for c in settings.pbx_connections}


def rules_of(settings: Settings, connection_name: str, ui_overlay: MappingOverlay | None
             ) -> MappingRuleSet:
    """Defaults ← the tenant's ← the connection's (configuration) ← the admin UI's overlay."""
    connection = next(c for c in settings.pbx_connections if c.name == connection_name)
    tenant = next(t for t in settings.tenants if t.name == connection.tenant)
    overlays = [parse_mapping_overlay(tenant.mapping, source=f"tenant {tenant.name}"),
                parse_mapping_overlay(connection.mapping,
                                      source=f"connection {connection.name}")]
    if ui_overlay is not None:
        overlays.append(ui_overlay)
    return apply_overlays(DEFAULT_RULES, *overlays)


@dataclass(frozen=True)
class Draft:
    """An overlay as the admin typed it (YAML), read: the overlay, or the problems."""

    text: str
    document: dict[str, Any] | None = None
    overlay: MappingOverlay | None = None
    problems: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Whether the admin cleared the overlay (saving it removes the stored one)."""
        return not self.text.strip()


def read_draft(text: str) -> Draft:
    """Read an overlay typed in the admin UI: YAML in the configuration's `mapping` form."""
    if not text.strip():
        return Draft(text)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        return Draft(text, problems=(f"not YAML{line}: {getattr(exc, 'problem', exc)}",))
    try:
        overlay = parse_mapping_overlay(data, source=UI_SOURCE)
    except MappingError as exc:
        return Draft(text, problems=tuple(exc.problems))
    assert isinstance(data, dict)  # parse_mapping_overlay refuses anything else
    return Draft(text, data, overlay)


def draft_text(document: Mapping[str, Any] | None) -> str:
    """A stored overlay as the YAML the admin edits."""
    return "" if not document else yaml.safe_dump(dict(document), sort_keys=False,
                                                  allow_unicode=True)


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
