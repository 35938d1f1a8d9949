"""Subscription capacity: one service account carries at most 650 people's presence.

The people are the Teams users the connections match: matched against a connection's
`users_file` where it has one; otherwise every Teams user in scope (enabled, licensed, in
the allowed groups) counts, since the PBX's own users are known only once it runs.
"""

from __future__ import annotations

import asyncio
import math

from m365pbx.check.accounts import AccountResult
from m365pbx.check.findings import Finding, fail, ok, warn
from m365pbx.config import Settings, Tenant
from m365pbx.config.connections import Matching
from m365pbx.config.models import SyncMode
from m365pbx.core.matching import (
    MatchOptions,
    left_out_reason,
    match_users,
    microsoft_properties,
    parse_rule,
)
from m365pbx.directory_files import load_pbx_users
from m365pbx.errors import UserInputError
from m365pbx.graph.client import GraphClient
from m365pbx.graph.errors import M365Error
from m365pbx.graph.groups import memberships
from m365pbx.graph.subscriptions import MAX_PRESENCE_IDS
from m365pbx.graph.users import list_users

AREA = "capacity"


def _options(matching: Matching, tenant: Tenant,
             groups: dict[str, set[str]] | None) -> MatchOptions:
    return MatchOptions(
        rules=tuple(parse_rule(rule) for rule in matching.rules),
        casefold=matching.casefold,
        unicode_normalize=matching.unicode_normalize,
        strip_domain=matching.strip_domain,
        phone_region=matching.phone_region,
        allowed_groups=frozenset(str(g) for g in tenant.directory.group_ids) or None,
        group_memberships=groups,
        require_teams_licence=tenant.directory.require_teams_licence,
    )


async def count_people(settings: Settings, tenant: Tenant,
                       reader: GraphClient) -> tuple[int, str]:
    """How many Teams users the tenant's connections follow, and how that was counted."""
    connections = [c for c in settings.pbx_connections if c.tenant == tenant.name]
    groups = (await memberships(reader, [str(g) for g in tenant.directory.group_ids])
              if tenant.directory.group_ids else None)
    options = {c.name: _options(c.matching, tenant, groups) for c in connections}
    keep: set[str] = {"id", "userPrincipalName", "accountEnabled", "assignedPlans"}
    for option in options.values():
        keep |= microsoft_properties(option)
    teams_users = await list_users(reader, keep)
    people: set[str] = set()
    how: list[str] = []
    for connection in connections:
        option = options[connection.name]
        if connection.users_file is not None:
            loaded = await asyncio.to_thread(load_pbx_users, connection.users_file)
            result = match_users(loaded.users, teams_users, option)
            people |= {match.teams for match in result.matched}
            how.append(f"{len(result.matched)} matched by {connection.name}'s users_file")
        else:
            in_scope = {str(u.get("id")) for u in teams_users if left_out_reason(u, option) is None}
            people |= in_scope
            how.append(f"{len(in_scope)} Teams users in scope for {connection.name}")
    return len(people), "; ".join(how) or "no PBX connection"


async def check_capacity(settings: Settings, tenant: Tenant, accounts: list[AccountResult],
                         reader: GraphClient | None) -> list[Finding]:
    """Whether the usable service accounts carry every person's presence subscription."""
    subject = f"tenant {tenant.name}"
    if reader is None:
        return [warn(AREA, subject, "the people could not be counted: the app could not sign "
                     "in", "Fix the app's sign-in first (see above).")]
    try:
        people, how = await count_people(settings, tenant, reader)
    except M365Error as exc:
        return [warn(AREA, subject, f"the people could not be counted: {exc.message}",
                     exc.hint or "Grant the app User.Read.All with admin consent.")]
    except UserInputError as exc:
        return [fail(AREA, subject, f"a users_file cannot be read: {exc.describe()}",
                     "Fix the file (see 'm365pbx match --pbx FILE').")]
    usable = [a for a in accounts if a.usable]
    capacity = MAX_PRESENCE_IDS * len(usable)
    counted = f"{people} people ({how})"
    if people <= capacity:
        return [ok(AREA, subject, f"{counted}: {len(usable)} usable service account(s) carry "
                   f"up to {capacity}")]
    short = people - capacity
    more = math.ceil(short / MAX_PRESENCE_IDS)
    polled = settings.teams_to_pbx.mode is not SyncMode.WEBHOOK
    outcome = ("they are polled instead (slower, and it uses the presence read limit)"
               if polled else "with mode: webhook they are not followed at all")
    message = (f"{counted}, but {len(usable)} usable service account(s) carry at most "
               f"{capacity} ({MAX_PRESENCE_IDS} each): {short} get no notifications, {outcome}")
    fix = (f"Declare {more} more service account(s) (licensed Teams users, each carries "
           f"{MAX_PRESENCE_IDS} people) and fix any account marked fail above.")
    return [(warn if polled else fail)(AREA, subject, message, fix)]
