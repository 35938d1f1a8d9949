"""Which Microsoft users take part in matching: enabled, licensed for Teams, in an allowed group."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from m365pbx.core.matching.options import MatchOptions
from m365pbx.core.matching.users import MicrosoftUser, microsoft_user_id

ACCOUNT_DISABLED = "account disabled"
NO_TEAMS_LICENCE = "no Teams licence"
NOT_IN_ALLOWED_GROUP = "not in an allowed group"

# Graph's assignedPlan: the Teams service is "TeamspaceAPI"; other capabilityStatus values
# (Warning, Suspended, Deleted, LockedOut) mean the plan does not work (assignedplan.md).
TEAMS_SERVICE = "TeamspaceAPI"
ENABLED = "Enabled"


def has_teams_plan(assigned_plans: list[object]) -> bool:
    """Tell whether a user's assignedPlans contain an enabled Teams service plan."""
    for plan in assigned_plans:
        if (
            isinstance(plan, dict)
            and plan.get("service") == TEAMS_SERVICE
            and plan.get("capabilityStatus") == ENABLED
        ):
            return True
    return False


def _group_ids(user: MicrosoftUser, options: MatchOptions) -> set[str]:
    if options.group_memberships is not None:
        found: Collection[object] = options.group_memberships.get(microsoft_user_id(user), ())
    else:
        member_of = user.get("memberOf")
        found = member_of if isinstance(member_of, list) else ()
    groups: set[str] = set()
    for entry in found:
        # Graph's memberOf returns directoryObjects; callers may also pass bare ids.
        group_id = entry.get("id") if isinstance(entry, dict) else entry
        if isinstance(group_id, str):
            groups.add(group_id)
    return groups


def left_out_reason(user: MicrosoftUser, options: MatchOptions) -> str | None:
    """Return why the user is left out of matching, or None when the user takes part."""
    if user.get("accountEnabled") is False:
        return ACCOUNT_DISABLED
    plans = user.get("assignedPlans")
    if options.require_teams_licence and isinstance(plans, list) and not has_teams_plan(plans):
        return NO_TEAMS_LICENCE
    if options.allowed_groups is not None and not (
        _group_ids(user, options) & options.allowed_groups
    ):
        return NOT_IN_ALLOWED_GROUP
    return None


def left_out_reasons(users: Sequence[MicrosoftUser], options: MatchOptions) -> list[str | None]:
    """left_out_reason for each user, in order, in one loop (no call per user or plan)."""
    if options.allowed_groups is not None:
        return [left_out_reason(user, options) for user in users]
    licence = options.require_teams_licence
    found: list[str | None] = []
    add = found.append
    for user in users:
        if user.get("accountEnabled") is False:
            add(ACCOUNT_DISABLED)
            continue
        plans = user.get("assignedPlans") if licence else None
        if isinstance(plans, list):
            for plan in plans:
                if (
                    isinstance(plan, dict)
                    and plan.get("service") == TEAMS_SERVICE
                    and plan.get("capabilityStatus") == ENABLED
                ):
                    break
            else:
                add(NO_TEAMS_LICENCE)
                continue
        add(None)
    return found
