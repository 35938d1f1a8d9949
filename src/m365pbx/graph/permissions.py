"""Which Microsoft Graph permission each feature needs, and what a token was granted.

One table (`FEATURES`) for the code; docs/permissions.md shows the same table to admins and
tests/graph/test_permissions_table.py keeps the two in step. Granted permissions are read
from the access token itself: `roles` for an application token (client credentials), `scp`
for a delegated one (a service account). The claims are read without checking the
signature: the token came straight from the sign-in host, and only Graph decides what it
honours; this is a diagnosis, not an authorisation.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from m365pbx.core.credentials import Permission


@dataclass(frozen=True)
class FeatureNeed:
    """One feature: what it calls and the permissions it needs (all of them)."""

    key: str
    # The feature as docs/permissions.md names it (the first column there).
    feature: str
    application: tuple[str, ...]
    delegated: tuple[str, ...]
    entry: Permission
    planned: bool = False


FEATURES: tuple[FeatureNeed, ...] = (
    FeatureNeed("directory", "directory: Teams users and their licences",
                ("User.Read.All",), (), Permission.USERS_READ),
    FeatureNeed("directory_changes",
                "directory changes within a minute (users change notifications)",
                ("User.Read.All",), (), Permission.USERS_READ),
    FeatureNeed("groups", "only the members of some groups (`directory.group_ids`)",
                ("GroupMember.Read.All",), (), Permission.USERS_READ),
    FeatureNeed("notifications", "Teams → PBX by notifications (`public_url` set)",
                (), ("Presence.Read.All", "offline_access"), Permission.PRESENCE_READ),
    FeatureNeed("polling", "Teams → PBX by polling, and reconciliation",
                ("Presence.Read.All",), (), Permission.PRESENCE_READ),
    FeatureNeed("calls_to_teams", 'PBX → Teams: calls as "In a call"',
                ("Presence.ReadWrite.All",), (), Permission.PRESENCE_WRITE),
    FeatureNeed("presence_to_teams", "PBX → Teams: away, busy, dnd",
                ("Presence.ReadWrite.All",), (), Permission.PRESENCE_WRITE),
    FeatureNeed("note_to_teams", "PBX → Teams: the PBX note as status message",
                ("Presence.ReadWrite.All",), (), Permission.PRESENCE_WRITE),
    FeatureNeed("calendar", "calendar → PBX (`calendar.enabled` on a connection)",
                ("Calendars.Read",), (), Permission.CALENDARS_READ),
    FeatureNeed("automatic_replies",
                "out of office from automatic replies (`calendar.automatic_replies`)",
                ("MailboxSettings.Read",), (), Permission.CALENDARS_READ),
    FeatureNeed("contacts", "contacts for PBX apps (`contacts.enabled` on a connection)",
                ("Contacts.Read",), (), Permission.CONTACTS_READ),
    FeatureNeed("org_contacts", "organisational contacts (`contacts.organisation`)",
                ("OrgContact.Read.All",), (), Permission.CONTACTS_READ),
)

FEATURE_BY_KEY = {need.key: need for need in FEATURES}

# Broader permissions that include narrower ones (Microsoft's permissions reference:
# ReadWrite includes Read; Directory.Read.All reads users and group members).
INCLUDES: dict[str, frozenset[str]] = {
    "Presence.ReadWrite.All": frozenset({"Presence.Read.All"}),
    "User.ReadWrite.All": frozenset({"User.Read.All"}),
    "Directory.Read.All": frozenset({"User.Read.All", "GroupMember.Read.All"}),
    "Directory.ReadWrite.All": frozenset({"User.Read.All", "GroupMember.Read.All"}),
    "Group.Read.All": frozenset({"GroupMember.Read.All"}),
    "Group.ReadWrite.All": frozenset({"GroupMember.Read.All"}),
    "Calendars.ReadWrite": frozenset({"Calendars.Read"}),
    "Contacts.ReadWrite": frozenset({"Contacts.Read"}),
    "MailboxSettings.ReadWrite": frozenset({"MailboxSettings.Read"}),
}

# OpenID scopes are asked for at sign-in but never appear in `scp`: a working refresh
# token is what shows offline_access was granted.
NOT_IN_SCP = frozenset({"offline_access", "openid", "profile", "email"})


def has_permission(granted: Iterable[str], needed: str) -> bool:
    """Tell whether `granted` (names compared without case) covers `needed`."""
    names = {name.casefold() for name in granted}
    if needed.casefold() in names:
        return True
    return any(broader.casefold() in names and needed in narrower
               for broader, narrower in INCLUDES.items())


def missing(granted: Iterable[str], needed: Iterable[str]) -> list[str]:
    """The permissions of `needed` that `granted` does not cover, in order."""
    have = list(granted)
    return [name for name in needed if not has_permission(have, name)]


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT access token, unverified; {} when it cannot be read."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}  # Microsoft's own tokens for its first-party resources may be opaque
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def application_roles(claims: dict[str, Any]) -> list[str]:
    """The application permissions an app token carries (`roles`)."""
    roles = claims.get("roles")
    return [str(role) for role in roles] if isinstance(roles, list) else []


def delegated_scopes(claims: dict[str, Any]) -> list[str]:
    """The delegated permissions a user token carries (`scp`, space-separated)."""
    scp = claims.get("scp")
    return str(scp).split() if isinstance(scp, str) else []


def admin_consent_url(login_url: str, tenant: str, client_id: str) -> str:
    """The page where an administrator grants the app's permissions for the tenant."""
    return (f"{login_url.rstrip('/')}/{quote(tenant, safe='')}/adminconsent"
            f"?client_id={quote(client_id, safe='')}")
