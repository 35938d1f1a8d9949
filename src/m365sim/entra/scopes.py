"""The `scope` parameter: which Graph permissions a token request asks for, and consent.

Only Microsoft Graph exists as a resource here; any other resource is an invalid scope
(AADSTS70011, as the client-credentials doc example answers for an unknown resource).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from m365sim.auth import IMPLIED
from m365sim.errors import AadError
from m365sim.model import AppRegistration

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
_GRAPH_PREFIXES = (GRAPH_RESOURCE + "//", GRAPH_RESOURCE + "/", GRAPH_APP_ID + "/")
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")

# Graph's delegated permission names we recognise besides those any scenario app lists.
KNOWN_GRAPH_PERMISSIONS = frozenset({
    "User.Read", "User.ReadWrite", "User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All",
    "Directory.Read.All", "Directory.ReadWrite.All", "Group.Read.All", "Group.ReadWrite.All",
    "GroupMember.Read.All", "Presence.Read", "Presence.Read.All", "Presence.ReadWrite",
    "Presence.ReadWrite.All", "Calendars.Read", "Calendars.ReadBasic", "Calendars.ReadWrite",
    "Calendars.Read.Shared", "Calendars.ReadWrite.Shared", "Contacts.Read", "Contacts.ReadWrite",
    "Contacts.Read.Shared", "Mail.Read", "Mail.ReadBasic", "Mail.Send", "MailboxSettings.Read",
    "MailboxSettings.ReadWrite", "People.Read", "People.Read.All", "Subscription.Read.All",
    "OnlineMeetings.Read", "OnlineMeetings.ReadWrite", "Team.ReadBasic.All", "Chat.Read",
    "Chat.ReadWrite", "ChannelMessage.Read.All", "Sites.Read.All", "Files.Read",
    "Files.Read.All", "Organization.Read.All", "Application.Read.All", "OrgContact.Read.All",
}) | frozenset(IMPLIED) | frozenset(p for implied in IMPLIED.values() for p in implied)


@dataclass(frozen=True)
class DelegatedRequest:
    """A parsed delegated scope: Graph permissions (or `.default`) plus OpenID scopes."""

    raw: str
    permissions: tuple[str, ...]
    default: bool
    oidc: tuple[str, ...]

    @property
    def offline(self) -> bool:
        """Whether a refresh token was asked for."""
        return "offline_access" in self.oidc

    @property
    def openid(self) -> bool:
        """Whether an id_token was asked for."""
        return "openid" in self.oidc


def _canonical(name: str, extra: Iterable[str]) -> str | None:
    lowered = name.lower()
    for known in (*KNOWN_GRAPH_PERMISSIONS, *extra):
        if known.lower() == lowered:
            return known
    return None


def _graph_prefixed(scope: str) -> str | None:
    """The permission part of a scope written with Graph's resource URI or app id."""
    lowered = scope.lower()
    for prefix in _GRAPH_PREFIXES:
        if lowered.startswith(prefix.lower()):
            return scope[len(prefix):]
    return None


def _graph_part(scope: str) -> str | None:
    """The permission part of a Graph scope ('.default' included); None for other resources.

    A bare name such as `User.Read` means Graph (v2 endpoint default resource).
    """
    part = _graph_prefixed(scope)
    if part is not None:
        return part
    return None if "/" in scope or ":" in scope else scope


def parse_delegated(raw: str, apps_permissions: Iterable[str] = ()) -> DelegatedRequest:
    """Split a delegated `scope` into Graph permissions and OpenID scopes; 70011 if bad."""
    known_extra = tuple(apps_permissions)
    permissions: list[str] = []
    oidc: list[str] = []
    default = False
    for scope in raw.split():
        if scope.lower() in OIDC_SCOPES:
            if scope.lower() not in oidc:
                oidc.append(scope.lower())
            continue
        part = _graph_part(scope)
        if part is not None and part.lower() == ".default":
            default = True
            continue
        name = _canonical(part, known_extra) if part else None
        if name is None:
            raise AadError("invalid_scope", 70011, scope)
        if name not in permissions:
            permissions.append(name)
    return DelegatedRequest(raw, tuple(permissions), default, tuple(oidc))


def check_app_scope(raw: str) -> None:
    """Client credentials take exactly `<graph>/.default` (70011 or 1002012 otherwise)."""
    scopes = raw.split()
    if len(scopes) != 1:
        raise AadError("invalid_scope", 70011, raw)
    part = _graph_prefixed(scopes[0])
    if part is None and ("/" in scopes[0] or ":" in scopes[0]):
        raise AadError("invalid_scope", 70011, scopes[0])
    if part is None or part.lower() != ".default":
        raise AadError("invalid_scope", 1002012, scopes[0])


def consented_permissions(app: AppRegistration, request: DelegatedRequest) -> tuple[str, ...]:
    """The Graph permissions a delegated token carries; AADSTS65001 if any lacks consent.

    The token lists every consented Graph permission of the app, not just the requested
    ones (Entra returns all consented scopes for the resource).
    """
    consented = {p.lower(): p for p in app.delegated_consent if p.lower() not in OIDC_SCOPES}
    missing = [p for p in request.permissions if p.lower() not in consented]
    if missing:
        raise AadError("invalid_grant", 65001, app.app_id, suberror="consent_required")
    return tuple(sorted(consented.values(), key=str.lower))


def granted_scope_string(permissions: Iterable[str], request: DelegatedRequest) -> str:
    """The `scope` of a delegated answer: Graph permissions, then openid/profile/email."""
    oidc = [s for s in ("profile", "openid", "email") if s in request.oidc]
    return " ".join([*permissions, *oidc])
