"""Compiled mapping tables: constant-time lookups and explanations of which rule decided.

Both input domains are small and finite (Teams: availability × activity; PBX: line state ×
PBX presence), so every possible input is decided once when the rule set is compiled.
The winner for an input is the matching rule with the highest specificity; among equally
specific rules the one declared first wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Generic, TypeVar

from m365pbx.core.mapping.rules import (
    CalendarToPbxRule,
    Channel,
    MappingRuleSet,
    PbxToTeamsRule,
    TeamsToPbxRule,
)
from m365pbx.core.presence import (
    Activity,
    Availability,
    LineState,
    PbxPresence,
    ShowAs,
    TeamsPresence,
)

RuleT = TypeVar("RuleT", TeamsToPbxRule, PbxToTeamsRule, CalendarToPbxRule)


@dataclass(frozen=True, slots=True)
class Explanation(Generic[RuleT]):
    """Which rule decided (None: no rule matched) and which other rules also matched."""

    winner: RuleT | None
    winner_number: int | None
    also_matched: tuple[tuple[int, RuleT], ...]
    reason: str


@dataclass(frozen=True, slots=True)
class TeamsWrite:
    """What one PBX → Teams channel should hold: a presence (None: nothing of ours)."""

    channel: Channel
    presence: TeamsPresence | None
    rule: PbxToTeamsRule | None

    @property
    def lifetime_seconds(self) -> float | None:
        """The rule's lifetime in seconds, if it sets one."""
        if self.rule is None or self.rule.lifetime is None:
            return None
        return self.rule.lifetime.total_seconds()


def _ranked(rules: Sequence[RuleT], matching: Iterable[int]) -> list[int]:
    # Highest specificity first; declaration order breaks ties.
    return sorted(matching, key=lambda index: (-rules[index].specificity, index))


class CompiledMapping:
    """A rule set turned into lookup tables for both directions."""

    def __init__(self, rules: MappingRuleSet) -> None:
        self.rules = rules
        self._teams: dict[tuple[Availability, Activity], int | None] = {}
        for availability, activity in product(Availability, Activity):
            presence = TeamsPresence(availability, activity)
            hits = [i for i, rule in enumerate(rules.teams_to_pbx) if rule.matches(presence)]
            ranked = _ranked(rules.teams_to_pbx, hits)
            self._teams[(availability, activity)] = ranked[0] if ranked else None
        self._pbx: dict[tuple[Channel, LineState, PbxPresence], int | None] = {}
        for channel, line, pbx in product(Channel, LineState, PbxPresence):
            hits = [
                i
                for i, rule in enumerate(rules.pbx_to_teams)
                if rule.channel is channel and rule.matches(line, pbx)
            ]
            ranked = _ranked(rules.pbx_to_teams, hits)
            self._pbx[(channel, line, pbx)] = ranked[0] if ranked else None
        # Hot path of the policy: presence and lifetime per input, without building objects.
        self._targets: dict[tuple[Channel, LineState, PbxPresence], tuple[
            TeamsPresence | None, float | None
        ]] = {}
        for key, index in self._pbx.items():
            rule = None if index is None else rules.pbx_to_teams[index]
            lifetime = rule.lifetime.total_seconds() if rule and rule.lifetime else None
            self._targets[key] = (rule.teams if rule else None, lifetime)
        self._pbx_by_teams = {
            key: (PbxPresence.ONLINE if index is None else rules.teams_to_pbx[index].pbx)
            for key, index in self._teams.items()
        }
        # Calendar rules have one exact condition each: the last declared for a value wins
        # (an overlay replaces a rule in place, so there is one).
        self._calendar: dict[ShowAs, int] = {
            rule.show_as: index for index, rule in enumerate(rules.calendar_to_pbx)}
        self._pbx_by_show_as = {
            show_as: (PbxPresence.ONLINE if index is None
                      else rules.calendar_to_pbx[index].pbx)
            for show_as in ShowAs for index in (self._calendar.get(show_as),)}

    def to_pbx(self, presence: TeamsPresence) -> PbxPresence:
        """The PBX presence for a Teams presence (`online` when no rule matches)."""
        return self._pbx_by_teams[(presence.availability, presence.activity)]

    def calendar_to_pbx(self, show_as: ShowAs) -> PbxPresence:
        """The PBX presence while an event of this `showAs` lasts (`online`: nothing shows)."""
        return self._pbx_by_show_as[show_as]

    def explain_calendar(self, show_as: ShowAs) -> Explanation[CalendarToPbxRule]:
        """Say which calendar rule decides events shown as `show_as`."""
        index = self._calendar.get(show_as)
        ranked = [] if index is None else [index]
        return _explain(self.rules.calendar_to_pbx, ranked,
                        f"calendar events shown as {show_as.value}", "online (nothing shows)")

    def target(
        self, channel: Channel, line: LineState, pbx: PbxPresence
    ) -> tuple[TeamsPresence | None, float | None]:
        """Presence (None: nothing) and lifetime in seconds for one channel; the fast form."""
        return self._targets[(channel, line, pbx)]

    def to_teams(self, channel: Channel, line: LineState, pbx: PbxPresence) -> TeamsWrite:
        """What `channel` should hold in Teams for this line state and PBX presence."""
        index = self._pbx[(channel, line, pbx)]
        if index is None:
            return TeamsWrite(channel, None, None)
        rule = self.rules.pbx_to_teams[index]
        return TeamsWrite(channel, rule.teams, rule)

    def explain_teams(self, presence: TeamsPresence) -> Explanation[TeamsToPbxRule]:
        """Say which Teams → PBX rule decides `presence`, and why it beat the others."""
        rules = self.rules.teams_to_pbx
        hits = [i for i, rule in enumerate(rules) if rule.matches(presence)]
        return _explain(rules, _ranked(rules, hits), f"Teams presence {presence}", "online")

    def explain_pbx(
        self, channel: Channel, line: LineState, pbx: PbxPresence
    ) -> Explanation[PbxToTeamsRule]:
        """Say which PBX → Teams rule decides this channel, and why it beat the others."""
        rules = self.rules.pbx_to_teams
        hits = [
            i for i, rule in enumerate(rules) if rule.channel is channel and rule.matches(line, pbx)
        ]
        subject = f"line {line.value} with PBX presence {pbx.value} ({channel.value})"
        return _explain(rules, _ranked(rules, hits), subject, "nothing")

    def unused_teams_rules(self) -> list[int]:
        """Indexes of Teams → PBX rules that decide no input at all."""
        used = {index for index in self._teams.values() if index is not None}
        return [i for i in range(len(self.rules.teams_to_pbx)) if i not in used]

    def unused_pbx_rules(self) -> list[int]:
        """Indexes of PBX → Teams rules that decide no input at all."""
        used = {index for index in self._pbx.values() if index is not None}
        return [i for i in range(len(self.rules.pbx_to_teams)) if i not in used]


def _explain(
    rules: Sequence[RuleT], ranked: list[int], subject: str, no_match: str
) -> Explanation[RuleT]:
    if not ranked:
        return Explanation(None, None, (), f"no rule matches {subject}; the result is {no_match}")
    winner = ranked[0]
    others = tuple((i + 1, rules[i]) for i in ranked[1:])
    reason = f"rule #{winner + 1} ({rules[winner].describe()}) decides {subject}"
    if others:
        beaten = []
        for number, rule in others:
            why = (
                "is less specific"
                if rule.specificity < rules[winner].specificity
                else "comes later"
            )
            beaten.append(f"rule #{number} ({rule.describe()}) also matches but {why}")
        reason += "; " + "; ".join(beaten)
    return Explanation(rules[winner], winner + 1, others, reason)
