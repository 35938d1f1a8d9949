"""Who is calling Graph: bearer-token checks and permission checks with Graph's errors."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import jwt
from fastapi import Request

from m365sim.errors import GraphError
from m365sim.model import AppRegistration, Tenant, User

# A higher permission grants the lower ones (permissions reference: ".All" and
# "ReadWrite" include "Read").
IMPLIED: dict[str, frozenset[str]] = {
    "Presence.ReadWrite.All": frozenset({"Presence.Read.All", "Presence.Read",
                                         "Presence.ReadWrite"}),
    "Presence.ReadWrite": frozenset({"Presence.Read"}),
    "Presence.Read.All": frozenset({"Presence.Read"}),
    "User.ReadWrite.All": frozenset({"User.Read.All", "User.ReadBasic.All"}),
    "User.Read.All": frozenset({"User.ReadBasic.All"}),
    "Directory.ReadWrite.All": frozenset({"Directory.Read.All", "User.Read.All",
                                          "User.ReadBasic.All", "Group.Read.All"}),
    "Directory.Read.All": frozenset({"User.Read.All", "User.ReadBasic.All", "Group.Read.All"}),
    "Calendars.ReadWrite": frozenset({"Calendars.Read", "Calendars.ReadBasic"}),
    "Calendars.Read": frozenset({"Calendars.ReadBasic"}),
    "Contacts.ReadWrite": frozenset({"Contacts.Read"}),
}


def expand(permissions: Iterable[str]) -> frozenset[str]:
    """The permissions together with everything they imply."""
    result: set[str] = set()
    for permission in permissions:
        result.add(permission)
        result |= IMPLIED.get(permission, frozenset())
    return frozenset(result)


@dataclass(frozen=True)
class Caller:
    """The verified caller of a Graph request."""

    tenant: Tenant
    app: AppRegistration
    user: User | None
    permissions: frozenset[str]
    token_expires: datetime

    @property
    def delegated(self) -> bool:
        """Whether the token acts for a signed-in user (else: application permissions)."""
        return self.user is not None

    def require(
        self,
        *,
        delegated: Iterable[str] = (),
        application: Iterable[str] = (),
        code: str = "Authorization_RequestDenied",
        message: str = "Insufficient privileges to complete the operation.",
    ) -> None:
        """Raise Graph's 403 unless the token carries one of the permissions for its kind."""
        accepted = set(delegated if self.delegated else application)
        if not accepted or not (accepted & self.permissions):
            raise GraphError(403, code, message)


def authenticate(request: Request, *, tenants: dict[str, Tenant], now: datetime,
                 decode: object) -> Caller:
    """Check the Authorization header and return the Caller; 401 with Graph's body if not."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not token or scheme.lower() != "bearer":
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    try:
        claims = decode(token)  # type: ignore[operator]
    except jwt.InvalidAudienceError:
        raise GraphError(401, "InvalidAuthenticationToken",
                         "Access token validation failure. Invalid audience.") from None
    except jwt.PyJWTError:
        raise GraphError(401, "InvalidAuthenticationToken",
                         "Access token validation failure.") from None
    if not isinstance(claims, dict):
        raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
    if now.timestamp() >= float(claims.get("exp", 0)):
        raise GraphError(401, "InvalidAuthenticationToken",
                         "Lifetime validation failed, the token is expired.")
    tenant = tenants.get(str(claims.get("tid", "")))
    app = tenant.apps.get(str(claims.get("appid", ""))) if tenant else None
    if tenant is None or app is None:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
    user: User | None = None
    if "scp" in claims:
        user = tenant.users.get(str(claims.get("oid", "")))
        if user is None or user.deleted or not user.account_enabled:
            raise GraphError(401, "InvalidAuthenticationToken",
                             "Access token validation failure. The user is not valid.")
        permissions = expand(str(claims["scp"]).split())
    else:
        permissions = expand(str(role) for role in claims.get("roles", []))
    expires = datetime.fromtimestamp(float(claims["exp"]), tz=now.tzinfo)
    return Caller(tenant, app, user, permissions, expires)
