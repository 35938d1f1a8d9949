"""Who is who in SIP: a person's address (AOR) and the account m365pbx acts as for them.

Address: a template such as `sip:{extension}@{domain}` filled from the PBX user's fields
(plus `{key}` and `{domain}`), or a field of the PBX user that holds the address already.
Account, two ways (RFC 3903 / RFC 3856):
- a gateway account: From = the gateway's address, one digest login for everyone; the
  presentity is the Request-URI (Kamailio accepts that; some servers allow only the own
  presentity);
- personal accounts: From = the person's address, credentials from templates such as
  username `{extension}` and password `{sip_password}` (a PBX user field).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

from m365pbx.pbx.base import PbxUser
from m365pbx.pbx.sip.digest import Credentials
from m365pbx.pbx.sip.useragent import host_for_uri

# RFC 3261 §25.1: characters allowed unescaped in the user part of a SIP URI.
_USER_SAFE = "-_.!~*'()&=+$,;?/"


class UnaddressableUser(ValueError):
    """A PBX user lacks what the address or credential template needs."""


@lru_cache(maxsize=64)
def _names(template: str) -> tuple[str, ...]:
    """The field names a template uses (a handful of templates, filled for everyone)."""
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)


def _fill(template: str, user: PbxUser, domain: str, *, escape: bool) -> str:
    defaults = {"key": user.key, "domain": domain}
    filled: dict[str, str] = {}
    for name in _names(template):
        # A field of the user's own wins over the built-in key and domain.
        value = user.fields.get(name) or defaults.get(name)
        if value is not None:
            plain = not escape or name == "domain" or (value.isascii() and value.isalnum())
            filled[name] = value if plain else quote(value, safe=_USER_SAFE)
    missing = sorted(set(_names(template)) - set(filled))
    if missing:
        raise UnaddressableUser(f"PBX user {user.key!r} has no {', '.join(missing)}")
    return template.format_map(filled)


@dataclass(frozen=True, slots=True)
class Addressing:
    """Turns a PBX user into their SIP address."""

    domain: str
    uri_template: str = "sip:{extension}@{domain}"
    uri_field: str | None = None

    def address(self, user: PbxUser) -> str:
        """The person's SIP address (address of record); UnaddressableUser if unknown."""
        if self.uri_field is not None:
            value = (user.value(self.uri_field) or "").strip()
            if not value:
                raise UnaddressableUser(f"PBX user {user.key!r} has no {self.uri_field}")
            address = value if value.startswith(("sip:", "sips:")) else f"sip:{value}"
        else:
            address = _fill(self.uri_template, user, self.domain, escape=True)
        if "@" not in address or any(char.isspace() for char in address):
            raise UnaddressableUser(f"{address!r} of PBX user {user.key!r} is not a SIP address")
        return address


@dataclass(frozen=True, slots=True)
class GatewayAccount:
    """One account for everyone: From is this account; password None = no digest."""

    username: str
    password: str | None = None

    def __repr__(self) -> str:
        return f"GatewayAccount(username={self.username!r}, password=<hidden>)"


@dataclass(frozen=True, slots=True)
class PersonalAccounts:
    """Each person authenticates as themselves, credentials filled from templates."""

    username_template: str = "{extension}"
    password_template: str = "{sip_password}"  # noqa: S105 - a field name, not a secret


AccountPolicy = GatewayAccount | PersonalAccounts | None


@dataclass(frozen=True, slots=True)
class Identity:
    """The From address and credentials used for one person's requests."""

    sender: str
    credentials: Credentials | None


def identity_for(
    policy: AccountPolicy, addressing: Addressing, user: PbxUser, address: str
) -> Identity:
    """Who m365pbx is when publishing or subscribing for `user` (at `address`)."""
    if policy is None:
        return Identity(address, None)
    if isinstance(policy, GatewayAccount):
        sender = f"sip:{quote(policy.username, safe=_USER_SAFE)}@{host_for_uri(addressing.domain)}"
        if policy.password is None:
            return Identity(sender, None)
        return Identity(sender, Credentials(policy.username, policy.password))
    username = _fill(policy.username_template, user, addressing.domain, escape=False)
    password = _fill(policy.password_template, user, addressing.domain, escape=False)
    return Identity(address, Credentials(username, password))
