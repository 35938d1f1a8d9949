"""Phone number comparison keys: E.164 via `phonenumbers`, digits only when a number won't parse."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import phonenumbers

from m365pbx.errors import UserInputError


@dataclass(frozen=True, slots=True)
class PhoneKey:
    """A number's comparison key and how many digits its national (significant) part has."""

    key: str
    national_digits: int


PhoneKeys = Callable[[str], PhoneKey]


def check_phone_region(region: str | None) -> str | None:
    """Return the upper-cased region code, or raise UserInputError for an unknown one."""
    if region is None:
        return None
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise UserInputError(
            f"unknown phone region {region!r}; use a two-letter ISO 3166 code such as DE, AT, CH,"
            " GB or US",
            location="phone region",
        )
    return code


def phone_key(value: str, region: str | None) -> PhoneKey:
    """Parse a number written any way; a number that does not parse keeps only its digits."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        digits = "".join(str(unicodedata.decimal(char)) for char in value if char.isdecimal())
        return PhoneKey(digits, len(digits))
    key = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if number.extension:
        key = f"{key};ext={number.extension}"
    return PhoneKey(key, len(phonenumbers.national_significant_number(number)))


def normalize_phone(value: str, region: str | None) -> str:
    """Return `+E164` (with `;ext=N` when there is an extension), or the bare digits as fallback."""
    return phone_key(value, region).key


def phone_keys(region: str | None) -> PhoneKeys:
    """Build a memoising phone_key for one region (shared switchboard numbers repeat a lot)."""
    seen: dict[str, PhoneKey] = {}

    def keys(value: str) -> PhoneKey:
        found = seen.get(value)
        if found is None:
            found = seen[value] = phone_key(value, region)
        return found

    return keys
