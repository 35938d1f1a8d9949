"""Everything a caller can set about one matching run."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from m365pbx.core.matching.rules import DEFAULT_RULES, Rule


@dataclass(frozen=True)
class MatchOptions:
    """Rules in order, comparison switches, pins, exclusions and the scope of Microsoft users.

    - `pins` maps a PBX h323 to a Microsoft user id (or userPrincipalName); pins beat rules.
    - `exclude` holds keys of either side (h323, Microsoft id or userPrincipalName).
    - `allowed_groups`: when set, only Microsoft users in one of these groups take part; their
      groups come from `group_memberships` (user id -> group ids) or else the user's `memberOf`.
    - `require_teams_licence`: leave out users whose `assignedPlans` (when present) hold no
      enabled Teams plan.
    """

    rules: tuple[Rule, ...] = DEFAULT_RULES
    casefold: bool = True
    unicode_normalize: bool = True
    strip_domain: bool = False
    phone_region: str | None = None
    pins: Mapping[str, str] = field(default_factory=dict)
    exclude: frozenset[str] = frozenset()
    allowed_groups: frozenset[str] | None = None
    group_memberships: Mapping[str, Collection[str]] | None = None
    require_teams_licence: bool = True
