"""Field names on both sides and how to read a Microsoft user's values for each field."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from m365pbx.core.matching.users import PBX_KEY_FIELD, MicrosoftUser

STANDARD_PBX_FIELDS: tuple[str, ...] = (PBX_KEY_FIELD, "cn", "email", "extension", "sip")

FieldReader = Callable[[MicrosoftUser], list[str]]


def _single(name: str) -> FieldReader:
    def read(user: MicrosoftUser) -> list[str]:
        value = user.get(name)
        return [value] if isinstance(value, str) and value.strip() else []

    return read


def _many(name: str) -> FieldReader:
    def read(user: MicrosoftUser) -> list[str]:
        values = user.get(name)
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list):
            return []
        return [value for value in values if isinstance(value, str) and value.strip()]

    return read


def _proxy_addresses(scheme: str) -> FieldReader:
    # proxyAddresses mixes kinds: "SMTP:" is the primary address, "smtp:" an alias, "SIP:" the
    # Teams/Skype address, "X500:" legacy Exchange ids (Graph user resource documentation).
    wanted = scheme + ":"
    width = len(wanted)

    def read(user: MicrosoftUser) -> list[str]:
        values = user.get("proxyAddresses")
        if not isinstance(values, list):
            return []
        return [
            value[width:]
            for value in values
            if isinstance(value, str) and value[:width].lower() == wanted and value[width:].strip()
        ]

    return read


MICROSOFT_FIELD_READERS: dict[str, FieldReader] = {
    "displayName": _single("displayName"),
    "mail": _single("mail"),
    "mailNickname": _single("mailNickname"),
    "userPrincipalName": _single("userPrincipalName"),
    "onPremisesDistinguishedName": _single("onPremisesDistinguishedName"),
    "onPremisesSamAccountName": _single("onPremisesSamAccountName"),
    "onPremisesUserPrincipalName": _single("onPremisesUserPrincipalName"),
    "proxyAddresses": _proxy_addresses("smtp"),
    "sipProxyAddresses": _proxy_addresses("sip"),
    "businessPhones": _many("businessPhones"),
    "mobilePhone": _single("mobilePhone"),
}

MICROSOFT_FIELDS: tuple[str, ...] = tuple(MICROSOFT_FIELD_READERS)

PHONE_FIELDS: frozenset[str] = frozenset({"businessPhones", "mobilePhone"})


_SINGLE = frozenset({
    "displayName", "mail", "mailNickname", "userPrincipalName", "onPremisesDistinguishedName",
    "onPremisesSamAccountName", "onPremisesUserPrincipalName", "mobilePhone",
})
_PROXY_SCHEMES = {"proxyAddresses": "smtp", "sipProxyAddresses": "sip"}


def field_values(users: Sequence[MicrosoftUser], name: str) -> Iterator[tuple[int, str]]:
    """Yield (position, value) for every non-empty raw value of the field, user by user.

    The same values as MICROSOFT_FIELD_READERS, read in one loop over all users: indexing
    50,000 users called a reader (and built a list) per user, a third of the index's time.
    """
    if name in _SINGLE:
        for position, user in enumerate(users):
            value = user.get(name)
            if isinstance(value, str) and value.strip():
                yield position, value
    elif name in _PROXY_SCHEMES:
        lower = _PROXY_SCHEMES[name] + ":"
        upper, width = lower.upper(), len(lower)
        for position, user in enumerate(users):
            values = user.get("proxyAddresses")
            if not isinstance(values, list):
                continue
            for value in values:
                if isinstance(value, str):
                    head = value[:width]
                    if (head in (upper, lower) or head.lower() == lower) and value[
                        width:
                    ].strip():
                        yield position, value[width:]
    elif name == "businessPhones":
        for position, user in enumerate(users):
            values = user.get(name)
            if isinstance(values, str):
                values = [values]
            if isinstance(values, list):
                for value in values:
                    if isinstance(value, str) and value.strip():
                        yield position, value
    else:
        read = MICROSOFT_FIELD_READERS[name]
        for position, user in enumerate(users):
            for value in read(user):
                yield position, value


def read_microsoft_field(user: MicrosoftUser, name: str) -> list[str]:
    """Return the user's non-empty raw values for a Microsoft field name (empty when absent)."""
    return MICROSOFT_FIELD_READERS[name](user)


def is_phone_field(microsoft_field: str) -> bool:
    """Tell whether values of this Microsoft field are compared as phone numbers."""
    return microsoft_field in PHONE_FIELDS
