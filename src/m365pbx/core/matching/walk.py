"""Walking one PBX user through the rules in order, narrowing candidates as it goes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from m365pbx.core.matching import reasons
from m365pbx.core.matching.lookups import FieldLookup
from m365pbx.core.matching.rules import Rule
from m365pbx.core.matching.users import PbxUser


@dataclass(frozen=True, slots=True)
class RuleLookup:
    """A rule with the lookup of its Microsoft field.

    `found`, when given, holds the lookup's answer for each PBX user in walking order, found
    for all of them at once (text rules); without it the walk asks the lookup user by user
    (phone rules: only the few users that reach them are parsed).
    """

    rule: Rule
    lookup: FieldLookup
    found: Sequence[list[int] | None] | None = None


@dataclass(frozen=True, slots=True)
class Decided:
    """Exactly one Microsoft user (by position) was found by `rule`."""

    position: int
    rule: str


@dataclass(frozen=True, slots=True)
class Undecided:
    """No single candidate: ambiguous when `candidates` is non-empty, else unmatched."""

    candidates: tuple[int, ...]
    reason: str


class RuleWalker:
    """Applies the rules to PBX users and remembers left-out users that a rule hit."""

    def __init__(
        self,
        lookups: Sequence[RuleLookup],
        ids: Sequence[str],
        blocked: Sequence[str | None],
        left_out: Sequence[str | None],
    ) -> None:
        self._lookups = [(lookup, str(lookup.rule)) for lookup in lookups]
        # The rules up to the first one without answers found in advance: most PBX users are
        # decided by one of them, with no other rule before it finding anyone.
        self._leading: list[tuple[Sequence[list[int] | None], str]] = []
        for lookup, rule_text in self._lookups:
            if lookup.found is None:
                break
            self._leading.append((lookup.found, rule_text))
        self._ids = ids
        self._blocked = blocked
        self._left_out = left_out
        # Left-out Microsoft user position -> (h323, rule) of the PBX user that hit it first
        # in h323 order.
        self.wanted_by: dict[int, tuple[str, str]] = {}

    def walk(self, user: PbxUser, number: int) -> Decided | Undecided:
        """Return the first rule's single candidate, or the candidates left and why.

        `number` is the user's place in the walking order (the index of `RuleLookup.found`).
        """
        # The walk below without the sentences (only undecided users need them), over the
        # answers found in advance; who is left undecided is walked again with its reasons.
        blocked = self._blocked
        narrowed: set[int] | None = None
        for found_of, rule_text in self._leading:
            hits = found_of[number]
            if not hits:
                continue
            if len(hits) == 1:
                if blocked[hits[0]] is None:
                    if narrowed is None or hits[0] in narrowed:
                        return Decided(hits[0], rule_text)
                    continue
                found = []
            else:
                found = [position for position in hits if blocked[position] is None]
            if len(found) < len(hits):
                self._remember(hits, user.key, rule_text)
            if narrowed is not None:
                found = [position for position in found if position in narrowed]
            if len(found) == 1:
                return Decided(found[0], rule_text)
            if found:
                narrowed = set(found)
        return self._walk(user, number)

    def _walk(self, user: PbxUser, number: int) -> Decided | Undecided:
        blocked = self._blocked
        narrowed: set[int] | None = None
        # Why each rule did not decide, as (sentence, arguments): most PBX users are decided
        # by a later rule, and only the undecided ones need the sentences written out.
        notes: list[tuple[Callable[..., str], tuple[object, ...]]] = []
        unavailable: dict[int, None] = {}
        for lookup, rule_text in self._lookups:
            rule = lookup.rule
            raw = user.value(rule.pbx_field)
            if lookup.found is not None:
                hits = lookup.found[number]
            else:
                hits = lookup.lookup.find(raw) if raw else None
            if raw is None or hits is None:
                notes.append((reasons.missing_pbx_value, (rule,)))
                continue
            if not hits:
                notes.append((reasons.no_candidate, (rule, raw)))
                continue
            if len(hits) == 1:
                found = hits if blocked[hits[0]] is None else []
            else:
                found = [position for position in hits if blocked[position] is None]
            if len(found) < len(hits):
                self._remember(hits, user.key, rule_text)
                unavailable.update((position, None) for position in hits if blocked[position])
            if narrowed is not None:
                found = [position for position in found if position in narrowed]
            if len(found) == 1:
                return Decided(found[0], rule_text)
            if found:
                several = reasons.several_candidates if narrowed is None else reasons.some_of_them
                notes.append((self._with_ids(several), (rule, raw, tuple(found))))
                narrowed = set(found)
            elif narrowed is not None:
                notes.append((reasons.none_of_them, (rule, raw)))
            else:
                notes.append((reasons.none_in_scope, (rule, raw)))
        if narrowed is None and unavailable:
            names = [(self._ids[position], blocked[position] or "") for position in unavailable]
            notes.append((reasons.left_out_hits, (names,)))
        reason = "; ".join(sentence(*arguments) for sentence, arguments in notes)
        return Undecided(tuple(sorted(narrowed or ())), reason)

    def _with_ids(self, sentence: Callable[[Rule, str, list[str]], str]) -> Callable[..., str]:
        """The sentence, given candidate positions instead of their ids."""
        ids = self._ids

        def write(rule: Rule, raw: str, positions: tuple[int, ...]) -> str:
            return sentence(rule, raw, [ids[position] for position in positions])

        return write

    def _remember(self, hits: Sequence[int], h323: str, rule_text: str) -> None:
        # The PBX user with the smallest h323 (and its first such rule) whatever the order in
        # which PBX users are walked.
        for position in hits:
            if self._left_out[position] is not None:
                first = self.wanted_by.get(position)
                if first is None or h323 < first[0]:
                    self.wanted_by[position] = (h323, rule_text)
