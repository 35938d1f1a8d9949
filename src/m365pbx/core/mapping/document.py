"""Mapping documents (YAML/JSON shaped dicts): parse with every problem named, and export.

Shape::

    replace: false            # true: these rules replace the ones beneath instead of amending
    teams_to_pbx:
      - {availability: Busy, activity: InACall, pbx: on-the-phone}
    pbx_to_teams:
      - {line_state: ringing, session: Busy/InACall, lifetime: 15m}
      - {pbx_presence: away, preferred: Away/Away, lifetime: 7d}
      - {pbx_presence: meeting, preferred: nothing}
    calendar_to_pbx:          # an Outlook event's showAs → PBX presence while it lasts
      - {show_as: busy, pbx: meeting}
      - {show_as: workingElsewhere, pbx: online}   # online: such events show nothing
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from enum import Enum
from typing import Any, TypeVar

from m365pbx.core.durations import format_duration, iso_duration, parse_duration
from m365pbx.core.mapping.engine import CompiledMapping
from m365pbx.core.mapping.rules import (
    CALENDAR_RULE_SHOW_AS,
    CalendarToPbxRule,
    Channel,
    MappingOverlay,
    MappingRuleSet,
    PbxToTeamsRule,
    TeamsToPbxRule,
)
from m365pbx.core.presence import (
    PREFERRED_PRESENCE_COMBINATIONS,
    SET_PRESENCE_COMBINATIONS,
    Activity,
    Availability,
    LineState,
    PbxPresence,
    ShowAs,
    TeamsPresence,
    lookup_activity,
    lookup_availability,
    lookup_line_state,
    lookup_pbx_presence,
    lookup_show_as,
)

# setPresence accepts expirationDuration PT5M..PT4H (graph.md 3.3).
SESSION_LIFETIME_MIN = timedelta(minutes=5)
SESSION_LIFETIME_MAX = timedelta(hours=4)
NOTHING = "nothing"

_TOP_KEYS = ("replace", "teams_to_pbx", "pbx_to_teams", "calendar_to_pbx")
_CAL_KEYS = ("show_as", "pbx")
_T2P_KEYS = ("availability", "activity", "pbx")
_P2T_KEYS = ("line_state", "pbx_presence", "session", "preferred", "lifetime")

E = TypeVar("E", bound=Enum)


class MappingError(ValueError):
    """A mapping document or rule set is invalid; `problems` names every one."""

    def __init__(self, problems: list[str], *, source: str = "") -> None:
        self.problems = problems
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(prefix + "; ".join(problems))


def _suggest(raw: str, choices: Iterable[str]) -> str:
    options = list(choices)
    close = difflib.get_close_matches(raw, options, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{hint}; expected one of: {', '.join(options)}"


class _Reader:
    """Collects problems while reading one document."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def enum(
        self, path: str, raw: object, lookup: Callable[[str], E | None], kind: type[E]
    ) -> E | None:
        if not isinstance(raw, str):
            self.problems.append(f"{path}: expected a {kind.__name__} name, got {raw!r}")
            return None
        value = lookup(raw)
        if value is None:
            names = [member.value for member in kind]
            self.problems.append(f"{path}: unknown value {raw!r}{_suggest(raw, names)}")
        return value

    def keys(self, path: str, item: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
        for key in item:
            if key not in allowed:
                self.problems.append(f"{path}.{key}: unknown key{_suggest(str(key), allowed)}")

    def rules(self, data: Mapping[str, Any], key: str) -> list[tuple[str, Mapping[str, Any]]]:
        raw = data.get(key, [])
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.problems.append(f"{key}: expected a list of rules, got {type(raw).__name__}")
            return []
        items = []
        for index, item in enumerate(raw):
            path = f"{key}[{index}]"
            if isinstance(item, Mapping):
                items.append((path, item))
            else:
                self.problems.append(f"{path}: expected a rule (a mapping), got {item!r}")
        return items

    def teams_value(self, path: str, raw: object, allowed: frozenset[TeamsPresence]) -> (
        TeamsPresence | None
    ):
        if isinstance(raw, str) and raw.strip().casefold() == NOTHING:
            return None
        text = raw if isinstance(raw, str) else ""
        availability_raw, _, activity_raw = text.partition("/")
        availability = lookup_availability(availability_raw)
        activity = lookup_activity(activity_raw)
        combos = ", ".join(sorted(str(c) for c in allowed))
        if availability is None or activity is None:
            self.problems.append(
                f"{path}: {raw!r} is not 'Availability/Activity' or 'nothing'; "
                f"Graph accepts: {combos}"
            )
            return None
        presence = TeamsPresence(availability, activity)
        if presence not in allowed:
            self.problems.append(f"{path}: Graph does not accept {presence} here; use one of: "
                                 f"{combos}")
        return presence

    def lifetime(self, path: str, raw: object) -> timedelta | None:
        if raw is None:
            return None
        try:
            value = parse_duration(str(raw))
        except ValueError as exc:
            self.problems.append(f"{path}: {exc}")
            return None
        if value <= timedelta(0):
            self.problems.append(f"{path}: a lifetime must be longer than zero")
        return value


def _read_teams_rule(reader: _Reader, path: str, item: Mapping[str, Any], origin: str) -> (
    TeamsToPbxRule | None
):
    reader.keys(path, item, _T2P_KEYS)
    availability = activity = None
    if "availability" in item:
        availability = reader.enum(
            f"{path}.availability", item["availability"], lookup_availability, Availability
        )
    if "activity" in item:
        activity = reader.enum(f"{path}.activity", item["activity"], lookup_activity, Activity)
    if "pbx" not in item:
        reader.problems.append(f"{path}: missing key 'pbx' (the PBX presence to show)")
        return None
    pbx = reader.enum(f"{path}.pbx", item["pbx"], lookup_pbx_presence, PbxPresence)
    if pbx is None:
        return None
    return TeamsToPbxRule(pbx, availability, activity, origin)


def _read_pbx_rule(reader: _Reader, path: str, item: Mapping[str, Any], origin: str) -> (
    PbxToTeamsRule | None
):
    reader.keys(path, item, _P2T_KEYS)
    line = pbx = None
    if "line_state" in item:
        line = reader.enum(f"{path}.line_state", item["line_state"], lookup_line_state, LineState)
    if "pbx_presence" in item:
        pbx = reader.enum(
            f"{path}.pbx_presence", item["pbx_presence"], lookup_pbx_presence, PbxPresence
        )
    targets = [key for key in ("session", "preferred") if key in item]
    if len(targets) != 1:
        reader.problems.append(f"{path}: give exactly one of 'session' or 'preferred'")
        return None
    channel = Channel(targets[0])
    allowed = (
        SET_PRESENCE_COMBINATIONS if channel is Channel.SESSION else PREFERRED_PRESENCE_COMBINATIONS
    )
    teams = reader.teams_value(f"{path}.{channel.value}", item[channel.value], allowed)
    lifetime = reader.lifetime(f"{path}.lifetime", item.get("lifetime"))
    if channel is Channel.SESSION and lifetime is not None and not (
        SESSION_LIFETIME_MIN <= lifetime <= SESSION_LIFETIME_MAX
    ):
        reader.problems.append(
            f"{path}.lifetime: a presence session lasts 5m to 4h (Graph's setPresence "
            f"expirationDuration), got {format_duration(lifetime)}"
        )
    if channel is Channel.SESSION and line is None and "line_state" not in item and pbx is None:
        reader.problems.append(f"{path}: a session rule needs 'line_state' or 'pbx_presence'")
    return PbxToTeamsRule(channel, teams, line, pbx, lifetime, origin)


def _read_calendar_rule(reader: _Reader, path: str, item: Mapping[str, Any], origin: str) -> (
    CalendarToPbxRule | None
):
    reader.keys(path, item, _CAL_KEYS)
    missing = [key for key in _CAL_KEYS if key not in item]
    if missing:
        reader.problems.append(f"{path}: missing key {missing[0]!r} (a calendar rule names "
                               "the event's show_as and the PBX presence to show)")
        return None
    show_as = reader.enum(f"{path}.show_as", item["show_as"], lookup_show_as, ShowAs)
    pbx = reader.enum(f"{path}.pbx", item["pbx"], lookup_pbx_presence, PbxPresence)
    if show_as is None or pbx is None:
        return None
    if show_as not in CALENDAR_RULE_SHOW_AS:
        allowed = ", ".join(sorted(value.value for value in CALENDAR_RULE_SHOW_AS))
        reader.problems.append(f"{path}.show_as: {show_as.value} events never show in the "
                               f"PBX; a calendar rule is for one of: {allowed}")
        return None
    return CalendarToPbxRule(show_as, pbx, origin)


def parse_mapping_overlay(data: object, *, source: str = "") -> MappingOverlay:
    """Read a mapping document; raise MappingError naming every problem in it."""
    reader = _Reader()
    origin = source or "document"
    if data is None:
        return MappingOverlay()
    if not isinstance(data, Mapping):
        raise MappingError(
            [f"expected a mapping with 'teams_to_pbx', 'pbx_to_teams' and/or "
             f"'calendar_to_pbx', got "
             f"{type(data).__name__}"],
            source=source,
        )
    reader.keys("mapping", data, _TOP_KEYS)
    replace = data.get("replace", False)
    if not isinstance(replace, bool):
        reader.problems.append(f"replace: expected true or false, got {replace!r}")
        replace = False
    teams_rules = [
        rule
        for path, item in reader.rules(data, "teams_to_pbx")
        if (rule := _read_teams_rule(reader, path, item, origin)) is not None
    ]
    pbx_rules = [
        pbx_rule
        for path, item in reader.rules(data, "pbx_to_teams")
        if (pbx_rule := _read_pbx_rule(reader, path, item, origin)) is not None
    ]
    calendar_rules = [
        calendar_rule
        for path, item in reader.rules(data, "calendar_to_pbx")
        if (calendar_rule := _read_calendar_rule(reader, path, item, origin)) is not None
    ]
    if not reader.problems:
        reader.problems.extend(_duplicates("teams_to_pbx", teams_rules))
        reader.problems.extend(_duplicates("pbx_to_teams", pbx_rules))
        reader.problems.extend(_duplicates("calendar_to_pbx", calendar_rules))
    if not reader.problems:
        rule_set = MappingRuleSet(tuple(teams_rules), tuple(pbx_rules))
        reader.problems.extend(find_unreachable_rules(rule_set))
    if reader.problems:
        raise MappingError(reader.problems, source=source)
    return MappingOverlay(tuple(teams_rules), tuple(pbx_rules), replace, tuple(calendar_rules))


def _duplicates(key: str, rules: Sequence[TeamsToPbxRule | PbxToTeamsRule | CalendarToPbxRule],
                ) -> list[str]:
    problems = []
    seen: dict[object, int] = {}
    for index, rule in enumerate(rules):
        first = seen.setdefault(rule.condition, index)
        if first == index:
            continue
        earlier = rules[first]
        if _outcome(earlier) == _outcome(rule):
            problems.append(
                f"{key}[{index}]: can never match: {key}[{first}] has the same condition"
            )
        else:
            problems.append(
                f"{key}[{index}] conflicts with {key}[{first}]: same condition, different "
                f"result ({rule.describe()} vs {earlier.describe()})"
            )
    return problems


def _outcome(rule: TeamsToPbxRule | PbxToTeamsRule | CalendarToPbxRule) -> object:
    if isinstance(rule, TeamsToPbxRule | CalendarToPbxRule):
        return rule.pbx
    return (rule.teams, rule.lifetime)


def find_unreachable_rules(rule_set: MappingRuleSet) -> list[str]:
    """Name each rule that decides no possible input because more specific rules cover it."""
    compiled = CompiledMapping(rule_set)
    problems = [
        f"teams_to_pbx[{i}] ({rule_set.teams_to_pbx[i].describe()}) can never match: "
        "more specific rules decide every presence it covers"
        for i in compiled.unused_teams_rules()
    ]
    problems += [
        f"pbx_to_teams[{i}] ({rule_set.pbx_to_teams[i].describe()}) can never match: "
        "more specific rules decide every state it covers"
        for i in compiled.unused_pbx_rules()
    ]
    return problems


def rule_set_to_document(rule_set: MappingRuleSet) -> dict[str, Any]:
    """Write a rule set as a document that `parse_mapping_overlay` reads back unchanged."""
    teams_to_pbx: list[dict[str, Any]] = []
    for t2p in rule_set.teams_to_pbx:
        item: dict[str, Any] = {}
        if t2p.availability is not None:
            item["availability"] = t2p.availability.value
        if t2p.activity is not None:
            item["activity"] = t2p.activity.value
        item["pbx"] = t2p.pbx.value
        teams_to_pbx.append(item)
    pbx_to_teams: list[dict[str, Any]] = []
    for p2t in rule_set.pbx_to_teams:
        entry: dict[str, Any] = {}
        if p2t.line_state is not None:
            entry["line_state"] = p2t.line_state.value
        if p2t.pbx_presence is not None:
            entry["pbx_presence"] = p2t.pbx_presence.value
        entry[p2t.channel.value] = NOTHING if p2t.teams is None else str(p2t.teams)
        if p2t.lifetime is not None:
            entry["lifetime"] = iso_duration(p2t.lifetime)
        pbx_to_teams.append(entry)
    calendar_to_pbx = [{"show_as": rule.show_as.value, "pbx": rule.pbx.value}
                       for rule in rule_set.calendar_to_pbx]
    return {"replace": True, "teams_to_pbx": teams_to_pbx, "pbx_to_teams": pbx_to_teams,
            "calendar_to_pbx": calendar_to_pbx}
