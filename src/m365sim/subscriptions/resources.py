"""The resources one can subscribe to, their rules, and how changes find their subscriptions.

graph.md 4.3 (maximum lifetime), 4.4 (resources and permissions) and 4.1 (change types);
`concepts/changenotifications-for-presence.md` for the presence resource strings.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qsl, unquote

from m365sim.auth import Caller
from m365sim.errors import GraphError
from m365sim.events import ResourceChange

MAX_PRESENCE_IDS = 650


class Kind(StrEnum):
    """What a subscription watches."""

    PRESENCE = "presence"
    USERS = "users"
    EVENTS = "events"
    CONTACTS = "contacts"


@dataclass(frozen=True)
class Rule:
    """What Graph allows for one kind of resource."""

    max_minutes: int
    change_types: frozenset[str]
    delegated: frozenset[str]
    # Empty: application permissions cannot subscribe (presence).
    application: frozenset[str]
    rich: bool
    # Outlook resources get subscriptionRemoved and missed lifecycle events (graph.md 4.6).
    outlook: bool


_CUD = frozenset({"created", "updated", "deleted"})
RULES: dict[Kind, Rule] = {
    Kind.PRESENCE: Rule(60, frozenset({"updated"}), frozenset({"Presence.Read.All"}),
                        frozenset(), rich=True, outlook=False),
    Kind.USERS: Rule(41_760, frozenset({"updated", "deleted"}), frozenset({"User.Read.All"}),
                     frozenset({"User.Read.All"}), rich=False, outlook=False),
    Kind.EVENTS: Rule(4_230, _CUD, frozenset({"Calendars.Read"}),
                      frozenset({"Calendars.Read"}), rich=True, outlook=True),
    Kind.CONTACTS: Rule(4_230, _CUD, frozenset({"Contacts.Read"}),
                        frozenset({"Contacts.Read"}), rich=True, outlook=True),
}

# The tail of the resource string after users/{id} (or me), per kind.
_TAILS: dict[str, Kind] = {"events": Kind.EVENTS, "contacts": Kind.CONTACTS}
_FILTER = re.compile(r"^\s*id\s+in\s*\((?P<items>.*)\)\s*$", re.IGNORECASE | re.DOTALL)
_QUOTED = re.compile(r"^\s*'(?P<id>[^']*)'\s*$")

FORBIDDEN_PRESENCE = ("Operation: Create; Exception: [Status Code: Forbidden; Reason: The "
                      "request is not authorized for this user or application.]")
FORBIDDEN = "Operation: Create; Exception: [Status Code: Forbidden; Reason: Forbidden]"


@dataclass(frozen=True)
class Target:
    """A parsed subscription resource: the kind and the users it covers (None: all)."""

    kind: Kind
    user_ids: frozenset[str] | None

    @property
    def rule(self) -> Rule:
        """Graph's rules for this kind of resource."""
        return RULES[self.kind]


def _invalid(resource: str) -> GraphError:
    # Chosen wording: Graph's answer for a resource it cannot subscribe to is not documented.
    return GraphError(400, "InvalidRequest",
                      f"The resource '{resource}' is not supported for change notifications.")


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def _presence_ids(resource: str, query: str) -> frozenset[str]:
    params = dict(parse_qsl(query, keep_blank_values=True))
    expression = params.get("$filter")
    if expression is None or len(params) != 1:
        raise _invalid(resource)
    match = _FILTER.match(expression)
    if match is None:
        raise GraphError(400, "InvalidRequest",
                         f"Invalid filter clause '{expression}': presence subscriptions take "
                         "$filter=id in ('id1','id2',...).")
    ids: list[str] = []
    for item in match.group("items").split(","):
        quoted = _QUOTED.match(item)
        if quoted is None:
            raise GraphError(400, "InvalidRequest", f"Invalid filter clause '{expression}'.")
        ids.append(quoted.group("id"))
    if not ids or ids == [""]:
        raise GraphError(400, "InvalidRequest", "The id list of the filter is empty.")
    if len(set(ids)) > MAX_PRESENCE_IDS:
        # graph.md 4.4: at most 650 users per presence subscription; wording chosen.
        raise GraphError(400, "InvalidRequest",
                         f"Too many user ids in the filter: {len(set(ids))}; the maximum is "
                         f"{MAX_PRESENCE_IDS}.")
    return frozenset(ids)


def _user_id(caller: Caller, segment: str) -> str:
    """The object id behind `me`, a user id or a UPN in a resource path."""
    if segment.lower() == "me":
        if caller.user is None:
            raise GraphError(400, "BadRequest",
                             "/me request is only valid with delegated authentication flow.")
        return caller.user.id
    user = caller.tenant.find_user(segment)
    if user is None:
        raise GraphError(404, "Request_ResourceNotFound",
                         f"Resource '{segment}' does not exist or one of its queried "
                         "reference-property objects are not present.")
    return user.id


def parse_resource(resource: str, caller: Caller) -> Target:
    """The Target of a subscription resource string, or Graph's 400/404."""
    raw = resource.strip()
    path, _, query = raw.lstrip("/").partition("?")
    segments = [unquote(s) for s in path.split("/") if s]
    lowered = [s.lower() for s in segments]
    if lowered[:2] == ["communications", "presences"]:
        if len(segments) == 2 and query:
            ids = _presence_ids(resource, query)
        elif len(segments) == 3 and not query:
            ids = frozenset({segments[2]})
        else:
            raise _invalid(resource)
        bad = sorted(i for i in ids if not _is_guid(i))
        if bad:
            raise GraphError(400, "InvalidRequest",
                             f"Invalid user id '{bad[0]}': presence subscriptions take user "
                             "object ids (GUIDs).")
        return Target(Kind.PRESENCE, ids)
    if query:
        raise _invalid(resource)
    if lowered == ["users"]:
        return Target(Kind.USERS, None)
    if len(segments) == 2 and lowered[0] == "users":
        return Target(Kind.USERS, frozenset({_user_id(caller, segments[1])}))
    if len(segments) == 2 and lowered[0] == "me" and lowered[1] in _TAILS:
        return Target(_TAILS[lowered[1]], frozenset({_user_id(caller, "me")}))
    if len(segments) == 3 and lowered[0] == "users" and lowered[2] in _TAILS:
        return Target(_TAILS[lowered[2]], frozenset({_user_id(caller, segments[1])}))
    raise _invalid(resource)


def check_permission(target: Target, caller: Caller) -> None:
    """Graph's 403 unless the caller may subscribe to the target (graph.md 4.4)."""
    rule = target.rule
    accepted = rule.delegated if caller.delegated else rule.application
    message = FORBIDDEN_PRESENCE if target.kind is Kind.PRESENCE else FORBIDDEN
    if not accepted or not accepted & caller.permissions:
        raise GraphError(403, "ExtensionError", message)
    if (caller.user is not None and target.kind in (Kind.EVENTS, Kind.CONTACTS)
            and target.user_ids != frozenset({caller.user.id})):
        # Chosen: delegated access to another user's mailbox (delegation, shared
        # mailboxes) is not modelled, so Exchange refuses it.
        raise GraphError(403, "ExtensionError",
                         "Operation: Create; Exception: [Status Code: Forbidden; Reason: "
                         "Access is denied. Check credentials and try again.]")


def parse_change_types(value: str, target: Target) -> frozenset[str]:
    """The changeType list, checked against what the resource supports (graph.md 4.1)."""
    names = [part.strip() for part in value.split(",")]
    if not value.strip() or any(not name for name in names):
        raise GraphError(400, "InvalidRequest", f"Invalid changeType '{value}'.")
    known = {"created", "updated", "deleted"}
    for name in names:
        if name not in known:
            raise GraphError(400, "InvalidRequest", f"Invalid changeType '{name}'.")
        if name not in target.rule.change_types:
            raise GraphError(400, "InvalidRequest",
                             f"ChangeType '{name}' is not supported for this resource; "
                             f"supported: {','.join(sorted(target.rule.change_types))}.")
    return frozenset(names)


def change_key(change: ResourceChange) -> tuple[Kind, str] | None:
    """The kind and user id a published change is about, from its resource path."""
    parts = change.resource.strip("/").split("/")
    head = parts[0].lower()
    if head == "communications" and len(parts) == 3 and parts[1].lower() == "presences":
        return Kind.PRESENCE, parts[2]
    if head != "users" or len(parts) < 2:
        return None
    if len(parts) == 2:
        return Kind.USERS, parts[1]
    kind = _TAILS.get(parts[2].lower())
    return (kind, parts[1]) if kind is not None and len(parts) == 4 else None
