"""match_users: PBX users against Microsoft users, rule by rule, with a reason for every outcome."""

from __future__ import annotations

import gc
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial

from m365pbx.core.matching import reasons
from m365pbx.core.matching.directory import MicrosoftDirectory
from m365pbx.core.matching.eligibility import left_out_reasons
from m365pbx.core.matching.fields import is_phone_field
from m365pbx.core.matching.lookups import FieldLookup, PhoneLookup, TextLookup, text_lookup
from m365pbx.core.matching.normalize import many_normalizer
from m365pbx.core.matching.options import MatchOptions
from m365pbx.core.matching.phones import check_phone_region, phone_keys
from m365pbx.core.matching.result import PIN_RULE, Ambiguous, Match, MatchResult, Unmatched
from m365pbx.core.matching.rules import Rule
from m365pbx.core.matching.selection import EXCLUDED, Selection, resolve_selection
from m365pbx.core.matching.users import MicrosoftUser, PbxUser
from m365pbx.core.matching.walk import Decided, RuleLookup, RuleWalker
from m365pbx.errors import UserInputError

ProgressCallback = Callable[[int, int], None]

PROGRESS_STEP = 1000

# Properties GET /users returns without $select (Graph user-list documentation).
GRAPH_DEFAULT_PROPERTIES = frozenset(
    {"businessPhones", "displayName", "mail", "mobilePhone", "userPrincipalName"}
)
GRAPH_PROPERTY_OF_FIELD = {"sipProxyAddresses": "proxyAddresses"}

# What matching reads of every Microsoft user whatever the rules: the id, the UPN (pins and
# exclusions may name it) and what decides whether the user takes part (eligibility.py).
ALWAYS_READ = frozenset({"id", "userPrincipalName", "accountEnabled", "assignedPlans", "memberOf"})


def microsoft_properties(options: MatchOptions) -> frozenset[str]:
    """Return the Graph user properties a match with these options reads; it ignores the rest."""
    return ALWAYS_READ | {
        GRAPH_PROPERTY_OF_FIELD.get(rule.microsoft_field, rule.microsoft_field)
        for rule in options.rules
    }


def match_users(
    pbx_users: Iterable[PbxUser],
    teams_users: Iterable[MicrosoftUser],
    options: MatchOptions | None = None,
    progress: ProgressCallback | None = None,
) -> MatchResult:
    """Match PBX users to Microsoft users; the result does not depend on input order."""
    with _cyclic_gc_paused():
        return _match(pbx_users, teams_users, options or MatchOptions(), progress)


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    # Building the indexes allocates hundreds of thousands of objects and no reference cycles;
    # each automatic collection would walk every input user again (about 20% of the run time
    # at 50,000 users). Reference counting still frees everything; the collector resumes after.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _match(
    pbx_users: Iterable[PbxUser],
    teams_users: Iterable[MicrosoftUser],
    options: MatchOptions,
    progress: ProgressCallback | None,
) -> MatchResult:
    region = check_phone_region(options.phone_region)
    pbx = _checked_pbx_users(pbx_users)
    directory = MicrosoftDirectory(teams_users)
    left_out = directory.reasons_by_position(partial(left_out_reasons, options=options))
    selection = resolve_selection(options, {user.key for user in pbx}, directory, left_out)
    blocked = _blocked_reasons(left_out, selection, directory)
    warnings = [*selection.warnings, *_absent_field_warnings(options.rules, pbx, directory)]

    fields = list(dict.fromkeys(rule.microsoft_field for rule in options.rules))
    total = len(fields) * len(directory) + len(pbx)
    done = 0
    text = many_normalizer(
        casefold=options.casefold,
        unicode_normalize=options.unicode_normalize,
        domain=options.strip_domain,
    )
    phone = phone_keys(region)

    field_lookups: dict[str, FieldLookup] = {}
    for field in fields:
        field_lookups[field] = (
            PhoneLookup(directory, field, phone)
            if is_phone_field(field)
            else text_lookup(directory, field, text)
        )
        done += len(directory)
        if progress:
            progress(done, total)
    lookups = [_rule_lookup(rule, field_lookups[rule.microsoft_field], pbx)
               for rule in options.rules]
    walker = RuleWalker(lookups, directory.ids, blocked, left_out)
    decided: dict[str, Decided] = {}
    unmatched: list[Unmatched] = []
    ambiguous: list[Ambiguous] = []
    for number, user in enumerate(pbx, start=1):
        h323 = user.key
        if h323 in selection.excluded_pbx:
            unmatched.append(Unmatched("pbx", h323, EXCLUDED))
        elif h323 in selection.failed_pins:
            unmatched.append(Unmatched("pbx", h323, selection.failed_pins[h323]))
        elif h323 in selection.pins:
            decided[h323] = Decided(selection.pins[h323], PIN_RULE)
        else:
            outcome = walker.walk(user, number - 1)
            if isinstance(outcome, Decided):
                decided[h323] = outcome
            elif outcome.candidates:
                ids = tuple(directory.ids[position] for position in outcome.candidates)
                ambiguous.append(Ambiguous(h323, ids, outcome.reason))
            else:
                unmatched.append(Unmatched("pbx", h323, outcome.reason))
        if progress and (number % PROGRESS_STEP == 0 or number == len(pbx)):
            progress(done + number, total)

    matched, conflicts = _settle_claims(decided, directory.ids)
    teams_unmatched, left_out_counts = _unmatched_teams_users(
        directory, matched, ambiguous, conflicts, selection, left_out, walker.wanted_by
    )
    ambiguous.extend(conflicts)
    unmatched.extend(teams_unmatched)
    return MatchResult(
        matched=tuple(sorted(matched, key=lambda item: item.pbx)),
        unmatched=tuple(sorted(unmatched, key=lambda item: (item.side, item.key))),
        ambiguous=tuple(sorted(ambiguous, key=lambda item: item.pbx)),
        warnings=tuple(dict.fromkeys(warnings)),
        pbx_users=len(pbx),
        teams_users=len(directory),
        left_out=dict(left_out_counts),
    )


def _rule_lookup(rule: Rule, lookup: FieldLookup, pbx: Sequence[PbxUser]) -> RuleLookup:
    """The rule with its lookup; a text lookup answers for every PBX user at once."""
    if isinstance(lookup, TextLookup):
        values = [user.value(rule.pbx_field) for user in pbx]
        return RuleLookup(rule, lookup, lookup.find_all(values))
    return RuleLookup(rule, lookup)


def _checked_pbx_users(users: Iterable[PbxUser]) -> list[PbxUser]:
    """The PBX users in input order, each h323 once; they are walked in that order, which
    the caches favour (see MicrosoftDirectory), and nothing in the result depends on it."""
    by_key: dict[str, PbxUser] = {}
    for user in users:
        if not user.key:
            raise UserInputError("a PBX user has an empty h323 (short name)")
        if user.key in by_key:
            raise UserInputError("two PBX users have this h323", location=f"h323 '{user.key}'")
        by_key[user.key] = user
    return list(by_key.values())


def _blocked_reasons(
    left_out: Sequence[str | None], selection: Selection, directory: MicrosoftDirectory
) -> list[str | None]:
    """Why each Microsoft user is not available to the rules (None: available)."""
    blocked = list(left_out)
    for position in selection.excluded_teams:
        blocked[position] = EXCLUDED
    for h323, position in sorted(selection.pins.items()):
        if blocked[position] is None:
            blocked[position] = f"pinned to PBX user {h323}"
    return blocked


def _absent_field_warnings(
    rules: Sequence[Rule], pbx: Sequence[PbxUser], directory: MicrosoftDirectory
) -> list[str]:
    """One warning per field that no user on its side has, naming the rules that use it."""
    rules_by_pbx_field: dict[str, list[str]] = defaultdict(list)
    rules_by_microsoft_field: dict[str, list[str]] = defaultdict(list)
    for rule in rules:
        rules_by_pbx_field[rule.pbx_field].append(str(rule))
        rules_by_microsoft_field[rule.microsoft_field].append(str(rule))
    warnings = []
    if pbx:
        for field, users in rules_by_pbx_field.items():
            if not any(user.value(field) for user in pbx):
                warnings.append(f"no PBX user has {field} (rule {', '.join(users)})")
    if len(directory):
        for field, users in rules_by_microsoft_field.items():
            if not directory.has_field(field):
                warnings.append(
                    f"no Microsoft user has {field} (rule {', '.join(users)}){_select_hint(field)}"
                )
    return warnings


def _select_hint(field: str) -> str:
    prop = GRAPH_PROPERTY_OF_FIELD.get(field, field)
    if prop in GRAPH_DEFAULT_PROPERTIES:
        return ""
    return f"; Graph returns {prop} only when $select names it"


def _settle_claims(
    decided: dict[str, Decided], ids: Sequence[str]
) -> tuple[list[Match], list[Ambiguous]]:
    """Keep matches whose Microsoft user no other PBX user claims; the rest become ambiguous."""
    owner: dict[int, str] = {}
    rivals: dict[int, list[str]] = {}
    for h323, outcome in decided.items():
        first = owner.setdefault(outcome.position, h323)
        if first != h323:
            rivals.setdefault(outcome.position, [first]).append(h323)
    matched = [
        Match(h323, ids[position], decided[h323].rule)
        for position, h323 in owner.items()
        if position not in rivals
    ]
    conflicts: list[Ambiguous] = []
    for position, h323s in rivals.items():
        ordered = sorted(h323s)
        reason = reasons.claimed_by_several(
            ids[position], [(h323, decided[h323].rule) for h323 in ordered]
        )
        conflicts.extend(Ambiguous(h323, (ids[position],), reason) for h323 in ordered)
    return matched, conflicts


def _unmatched_teams_users(
    directory: MicrosoftDirectory,
    matched: Sequence[Match],
    ambiguous: Sequence[Ambiguous],
    conflicts: Sequence[Ambiguous],
    selection: Selection,
    left_out: Sequence[str | None],
    wanted_by: dict[int, tuple[str, str]],
) -> tuple[list[Unmatched], Counter[str]]:
    """Report Microsoft users without a partner; left-out ones only if a PBX user wanted them."""
    taken = {item.teams for item in matched}
    claimed_by: dict[str, list[str]] = defaultdict(list)
    candidate_of: dict[str, list[str]] = defaultdict(list)
    for item in conflicts:
        claimed_by[item.candidates[0]].append(item.pbx)
    for item in ambiguous:
        for teams_id in item.candidates:
            candidate_of[teams_id].append(item.pbx)
    unmatched: list[Unmatched] = []
    counts: Counter[str] = Counter()
    for position, teams_id in enumerate(directory.ids):
        why = left_out[position]
        if why is not None:
            counts[why] += 1
        if teams_id in taken:
            continue
        if position in selection.excluded_teams:
            reason = EXCLUDED
        elif teams_id in claimed_by:
            reason = reasons.matched_by_several(sorted(claimed_by[teams_id]))
        elif teams_id in candidate_of:
            reason = reasons.candidate_of(sorted(candidate_of[teams_id]))
        elif why is not None:
            if position not in wanted_by:
                continue
            reason = reasons.left_out_but_wanted(why, *wanted_by[position])
        else:
            reason = "no PBX user matched"
        unmatched.append(Unmatched("teams", teams_id, reason))
    return unmatched, counts
