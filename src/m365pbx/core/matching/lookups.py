"""Finding the Microsoft users whose field equals a PBX value: one index per Microsoft field."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from m365pbx.core.matching.directory import MicrosoftDirectory, TextIndex, ValueIndex
from m365pbx.core.matching.normalize import ManyNormalizer, strip_sip_scheme
from m365pbx.core.matching.phones import PhoneKeys

NO_HITS: list[int] = []

# Parsing every Microsoft phone number would take most of the run time, so numbers are filed
# by their last digits and only the few sharing those digits with a PBX number are parsed.
# A value of ASCII digits and separators only ("plain") ends in the same digits as its E.164
# form whenever its national significant number has at least SAFE_NATIONAL_DIGITS digits:
# prefixes (international, country, national, carrier) are stripped from the front, and the
# rewrite rules of a few regions touch only short numbers. Such PBX numbers use the buckets;
# shorter ones use an exact index of every parsed value, built the first time it is needed.
# tests/core/test_matching_phones.py checks the suffix property with hypothesis.
_PLAIN_PHONE = re.compile(r"\+?[0-9 ()./-]*")
_SEPARATORS = str.maketrans("", "", "+ ()./-")
_SEPARATOR_BYTES = b"+ ()./-"
SUFFIX_DIGITS = 6
SAFE_NATIONAL_DIGITS = 8


class FieldLookup(Protocol):
    """Looks up PBX values in one Microsoft field."""

    def find(self, value: str) -> list[int] | None:
        """Return the positions (ascending) of users with an equal value; None for no value."""
        ...


class TextLookup:
    """Exact lookup of the normalised PBX value in a dict of normalised Microsoft values."""

    def __init__(self, index: TextIndex, normalize: ManyNormalizer) -> None:
        self._index = index
        self._normalize = normalize

    def find(self, value: str) -> list[int] | None:
        """Return the positions of users whose normalised value equals the PBX value's."""
        return self.find_all([value])[0]

    def find_all(self, values: Sequence[str | None]) -> list[list[int] | None]:
        """find() for each value at once (None where a value is missing or normalises to '')."""
        present = [at for at, value in enumerate(values) if value]
        texts = [values[at] or "" for at in present]
        # A PBX value may be a SIP URI (sip:anna@example.com) where Microsoft holds the address.
        keys = self._normalize([strip_sip_scheme(text) if ":" in text else text for text in texts])
        found: list[list[int] | None] = [None] * len(values)
        get = self._index.get
        for at, key in zip(present, keys, strict=True):
            if key:
                hit = get(key)
                found[at] = NO_HITS if hit is None else [hit] if isinstance(hit, int) else hit
        return found


def digits_suffix(phone_key: str) -> str:
    """The last digits of a phone comparison key (E.164 with optional `;ext=`, or digits)."""
    return "".join(char for char in phone_key if char.isdigit())[-SUFFIX_DIGITS:]


def plain_suffix(value: str) -> str | None:
    """The last digits of a plain phone value, or None when it must be parsed to be filed."""
    # _PLAIN_PHONE.fullmatch, without the regular expression (called for every number):
    # ASCII, only digits once the separators are gone, and a '+' at the start if anywhere.
    # The separators are deleted from the bytes: str.translate() deleting characters takes
    # its slow path, a dict lookup per character (three times as long).
    if not value.isascii():
        return None
    digits = value.encode("ascii").translate(None, _SEPARATOR_BYTES)
    if not digits.isdigit() or value.find("+", 1) >= 0:
        return None
    return digits[-SUFFIX_DIGITS:].decode("ascii") if len(digits) >= SAFE_NATIONAL_DIGITS else None


class PhoneLookup:
    """Phone numbers filed by their last digits; candidates are compared by their full key."""

    def __init__(self, directory: MicrosoftDirectory, field: str, keys: PhoneKeys) -> None:
        self._keys = keys
        self._directory = directory
        self._field = field
        self._buckets: dict[str, list[tuple[int, str]]] = {}
        self._exact: ValueIndex | None = None
        buckets = self._buckets
        for position, value in zip(*directory.columns(field), strict=True):
            suffix = plain_suffix(value)
            if suffix is None:
                suffix = digits_suffix(keys(value).key)
            if suffix:
                bucket = buckets.get(suffix)
                if bucket is None:
                    buckets[suffix] = [(position, value)]
                else:
                    bucket.append((position, value))

    def find(self, value: str) -> list[int] | None:
        """Return the positions of users with a number equal to the PBX value."""
        wanted = self._keys(value)
        key = wanted.key
        if not key:
            return None
        if wanted.national_digits < SAFE_NATIONAL_DIGITS:
            return self._exact_index().get(key, NO_HITS)
        bucket = self._buckets.get(digits_suffix(key))
        if not bucket:
            return NO_HITS
        hits = [position for position, raw in bucket if self._keys(raw).key == key]
        return sorted(set(hits)) if len(hits) > 1 else hits

    def _exact_index(self) -> ValueIndex:
        if self._exact is None:
            exact: ValueIndex = {}
            for position, raw in zip(*self._directory.columns(self._field), strict=True):
                exact.setdefault(self._keys(raw).key, []).append(position)
            self._exact = {key: sorted(set(hits)) for key, hits in exact.items()}
        return self._exact


def text_lookup(
    directory: MicrosoftDirectory, field: str, normalize: ManyNormalizer
) -> TextLookup:
    """Index the field's normalised values and look PBX values up in that index."""
    return TextLookup(directory.build_index(field, normalize), normalize)
