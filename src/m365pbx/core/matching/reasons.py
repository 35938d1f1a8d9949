"""Sentences that explain each outcome to a person."""

from __future__ import annotations

from collections.abc import Sequence

from m365pbx.core.matching.rules import Rule

MAX_LISTED = 10


def listing(items: Sequence[str]) -> str:
    """Join ids or names with commas, cutting long lists short."""
    shown = ", ".join(items[:MAX_LISTED])
    rest = len(items) - MAX_LISTED
    return f"{shown} and {rest} more" if rest > 0 else shown


def missing_pbx_value(rule: Rule) -> str:
    """The PBX user has no value for the rule's PBX field."""
    return f"PBX user has no {rule.pbx_field} (rule {rule})"


def no_candidate(rule: Rule, value: str) -> str:
    """Nobody on the Microsoft side has the value."""
    return f"no Microsoft user has {rule.microsoft_field} = '{value}' (rule {rule})"


def none_in_scope(rule: Rule, value: str) -> str:
    """Only users that are left out of matching have the value."""
    return f"no Microsoft user in scope has {rule.microsoft_field} = '{value}' (rule {rule})"


def left_out_hits(left_out: Sequence[tuple[str, str]]) -> str:
    """Microsoft users the rules found but that cannot take part, with why."""
    return "left out: " + listing([f"{user_id} ({why})" for user_id, why in left_out])


def several_candidates(rule: Rule, value: str, ids: Sequence[str]) -> str:
    """Several Microsoft users have the value."""
    return (
        f"{len(ids)} Microsoft users have {rule.microsoft_field} = '{value}' (rule {rule}): "
        f"{listing(ids)}"
    )


def none_of_them(rule: Rule, value: str) -> str:
    """A later rule found none of the earlier candidates."""
    return f"none of them has {rule.microsoft_field} = '{value}' (rule {rule})"


def some_of_them(rule: Rule, value: str, ids: Sequence[str]) -> str:
    """A later rule narrowed the earlier candidates, but not to one."""
    return (
        f"{len(ids)} of them have {rule.microsoft_field} = '{value}' (rule {rule}): {listing(ids)}"
    )


def claimed_by_several(teams_id: str, claims: Sequence[tuple[str, str]]) -> str:
    """Several PBX users matched the same Microsoft user."""
    who = listing([f"{h323} (rule {rule})" for h323, rule in claims])
    return f"Microsoft user {teams_id} is matched by {len(claims)} PBX users: {who}"


def pinned_to_left_out(teams_id: str, why: str) -> str:
    """A pin names a Microsoft user that cannot take part."""
    return f"pinned to Microsoft user {teams_id}, which is left out: {why}"


def candidate_of(h323s: Sequence[str]) -> str:
    """Teams side: the user is one of several candidates of ambiguous PBX users."""
    noun = "PBX user" if len(h323s) == 1 else "PBX users"
    return f"one of several candidates for {noun} {listing(h323s)}"


def matched_by_several(h323s: Sequence[str]) -> str:
    """Teams side: several PBX users claimed the user, so none got it."""
    return f"matched by {len(h323s)} PBX users, so by none: {listing(h323s)}"


def left_out_but_wanted(why: str, h323: str, rule: str) -> str:
    """Teams side: the user is left out although a PBX user would have matched it."""
    return f"{why}; PBX user '{h323}' would match it by rule {rule}"
