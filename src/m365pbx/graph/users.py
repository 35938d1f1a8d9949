"""Directory calls: Teams-licensed users (full list and delta)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from typing import Any

from m365pbx.graph.client import GraphClient
from m365pbx.graph.errors import GraphError

# Everything matching and licence filtering read; most of it comes only with $select
# (graph.md 2.1).
USER_FIELDS = (
    "id", "displayName", "mail", "mailNickname", "userPrincipalName", "givenName", "surname",
    "businessPhones", "mobilePhone", "proxyAddresses", "accountEnabled", "assignedPlans",
    "onPremisesDistinguishedName", "onPremisesSamAccountName", "onPremisesUserPrincipalName",
)
PAGE_SIZE = "999"


TEAMS_SERVICE = "TeamspaceAPI"
# What the licence check reads of a plan (core/matching/eligibility.py).
PLAN_FIELDS = ("service", "capabilityStatus")


def slim(user: dict[str, Any]) -> dict[str, Any]:
    """Keep only the Teams entries of assignedPlans: the licence check needs nothing else,
    and a tenant's other plans are most of a user's size (a 50,000-user sync held ≈ 50 MB
    of them)."""
    plans = user.get("assignedPlans")
    if isinstance(plans, list):
        user["assignedPlans"] = [p for p in plans
                                 if isinstance(p, dict) and p.get("service") == TEAMS_SERVICE]
    return user


# Kept plan lists by content: nearly every user has one of a handful (see `only`).
_SHARED_PLANS: dict[tuple[object, ...], list[Any]] = {}
_MAX_SHARED_PLANS = 4096


def _shared(plans: list[Any]) -> list[Any]:
    key = tuple(tuple(plan.items()) if isinstance(plan, dict) else plan for plan in plans)
    try:
        found = _SHARED_PLANS.get(key)
    except TypeError:  # a value Graph should not send (a list in a plan): kept as it is
        return plans
    if found is not None:
        return found
    if len(_SHARED_PLANS) < _MAX_SHARED_PLANS:
        _SHARED_PLANS[key] = plans
    return plans


def only(user: dict[str, Any], keep: Collection[str]) -> dict[str, Any]:
    """The user with just the properties in `keep`, and of each plan just what the licence
    check reads: a 50,000-user directory then takes about 30 MB instead of 108 MB.

    Users with the same plans share one list of them: callers read it, never change it.
    """
    kept = {name: value for name, value in user.items() if name in keep}
    plans = kept.get("assignedPlans")
    if isinstance(plans, list):
        # The same few service and status names in every user: interned, stored once.
        kept["assignedPlans"] = _shared([
            {name: sys.intern(plan[name]) if isinstance(plan[name], str) else plan[name]
             for name in PLAN_FIELDS if name in plan}
            if isinstance(plan, dict) else plan
            for plan in plans
        ])
    return kept


async def iter_users(client: GraphClient,
                     keep: Collection[str] | None = None) -> AsyncIterator[list[dict[str, Any]]]:
    """All users of the tenant, one page at a time; only the properties in `keep` if given."""
    params = {"$select": ",".join(USER_FIELDS), "$top": PAGE_SIZE}
    async for page in client.pages("/v1.0/users", params=params):
        users = [slim(u) for u in page.get("value", []) if isinstance(u, dict)]
        yield users if keep is None else [only(u, keep) for u in users]


async def list_users(client: GraphClient,
                     keep: Collection[str] | None = None) -> list[dict[str, Any]]:
    """All users of the tenant (a failed page raises: never a partial list).

    `keep` names the properties the caller reads; the others are dropped page by page, so
    a large directory never sits in memory whole.
    """
    users: list[dict[str, Any]] = []
    async for page in iter_users(client, keep):
        users.extend(page)
    return users


@dataclass
class DeltaResult:
    """Users changed since the last delta link, and the link to use next time."""

    changed: list[dict[str, Any]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    delta_link: str = ""


# Graph's answers to a delta link it no longer serves: a reset (410 Gone) or an expired
# token (older than 7 days; "a 40X-series error with a code such as syncStateNotFound",
# concepts/delta-query-overview.md). Either way only a full read starts over.
_DELTA_RESTART_CODES = frozenset({"syncstatenotfound", "resyncrequired"})


def delta_link_expired(error: GraphError) -> bool:
    """Tell whether Graph refused a delta link for good (a full read must start over)."""
    return error.status == 410 or error.code.casefold() in _DELTA_RESTART_CODES


async def users_delta_link(client: GraphClient) -> str:
    """A delta link from now on, without listing anyone (`$deltatoken=latest`).

    Taken just before a full read, its next round returns whatever changed during and
    after that read.
    """
    page = await client.get_json("/v1.0/users/delta", params={
        "$select": ",".join(USER_FIELDS), "$deltatoken": "latest"})
    link = page.get("@odata.deltaLink")
    if not isinstance(link, str) or not link:
        raise GraphError("Graph answered /users/delta?$deltatoken=latest without a deltaLink")
    return link


async def users_delta(client: GraphClient, delta_link: str | None,
                      keep: Collection[str] | None = None) -> DeltaResult:
    """Changes since `delta_link` (None: a full first round that ends with a delta link).

    `keep` names the properties the caller reads, as for `list_users`.
    """
    result = DeltaResult()
    if delta_link:
        pages = client.pages(delta_link)
    else:
        pages = client.pages("/v1.0/users/delta", params={"$select": ",".join(USER_FIELDS)})
    async for page in pages:
        for user in page.get("value", []):
            if not isinstance(user, dict):
                continue
            if "@removed" in user:
                result.removed.append(str(user.get("id", "")))
            else:
                user = slim(user)
                result.changed.append(user if keep is None else only(user, keep))
        if isinstance(page.get("@odata.deltaLink"), str):
            result.delta_link = str(page["@odata.deltaLink"])
    return result
