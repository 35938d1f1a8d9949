"""Text normalisation applied to both sides of a rule before values are compared."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from functools import cache

Normalizer = Callable[[str], str]
# Normalises many values at once: the same keys as a Normalizer applied to each, in order.
ManyNormalizer = Callable[[Sequence[str]], list[str]]

# Letters with a stroke or bar have no Unicode decomposition, so NFKD alone keeps them.
_UNDECOMPOSABLE_LETTERS = str.maketrans(
    {"ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ħ": "h", "Ħ": "H", "ı": "i"}
)
_UNDECOMPOSABLE_LETTERS_TEXT = "øØłŁđĐħĦı"
# Accents are the combining diacritical mark blocks; marks of other scripts (vowel signs,
# viramas) carry meaning and stay.
_ACCENTS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def fold_unicode(value: str) -> str:
    """Apply NFKC (full-width and compatibility forms), strip accents and collapse whitespace."""
    if value.isascii():
        # Printable ASCII without spaces (most addresses and names) is already in normal form.
        if " " not in value and value.isprintable():
            return value
        return " ".join(value.split())
    value = unicodedata.normalize("NFKC", value)
    if not value.isascii():
        decomposed = unicodedata.normalize("NFKD", value.translate(_UNDECOMPOSABLE_LETTERS))
        value = unicodedata.normalize("NFC", _ACCENTS.sub("", decomposed))
    return " ".join(value.split())


def strip_domain(value: str) -> str:
    """Turn `user@domain.tld` into `user`; other values pass unchanged."""
    local, at, _domain = value.rpartition("@")
    return local if at else value


def strip_sip_scheme(value: str) -> str:
    """Drop a leading `sip:` or `sips:` URI scheme (any case) from a PBX value."""
    if ":" not in value:
        return value
    trimmed = value.lstrip()
    head = trimmed[:5].lower()
    if head.startswith("sip:"):
        return trimmed[4:]
    if head == "sips:":
        return trimmed[5:]
    return value


def text_normalizer(*, casefold: bool, unicode_normalize: bool, domain: bool) -> Normalizer:
    """Build the function that turns a raw text value into its comparison key."""
    normalize: Normalizer | None = None
    if unicode_normalize:
        normalize = _folding(casefold=casefold)
    elif casefold:
        normalize = str.casefold
    if domain:
        normalize = strip_domain if normalize is None else _then(normalize, strip_domain)
    return str if normalize is None else normalize


def many_normalizer(*, casefold: bool, unicode_normalize: bool, domain: bool) -> ManyNormalizer:
    """Build the function that turns a list of raw text values into their comparison keys."""
    # Joining the values to lower and split them in one C call was no faster: lower() walks
    # ASCII text character by character either way, and most values are ASCII.
    one = text_normalizer(casefold=casefold, unicode_normalize=unicode_normalize, domain=domain)
    return lambda values: list(map(one, values))


def _folding(*, casefold: bool) -> Normalizer:
    """fold_unicode, then casefold if asked, in one call; values that need Unicode work are
    remembered (names repeat, and each costs half a dozen passes over the text)."""
    seen: dict[str, str] = {}
    latin = _latin_folds(casefold=casefold)

    def fold(value: str) -> str:
        if value.isascii():
            # casefold() of ASCII is lower(); see fold_unicode for the whitespace rule.
            if " " in value or not value.isprintable():
                value = " ".join(value.split())
            return value.lower() if casefold else value
        found = seen.get(value)
        if found is None:
            quick = value.translate(latin)
            if quick.isascii():
                found = " ".join(quick.split())
                found = found.lower() if casefold else found
            else:
                found = fold_unicode(value)
                found = found.casefold() if casefold else found
            seen[value] = found
        return found

    return fold


# Accented Latin letters (precomposed, or a letter followed by combining accents: NFD) fold
# one character at a time to ASCII: one translate() instead of five passes over the text.
# Left out: letters whose fold is not ASCII (æ, þ; ß unless casefolded) and the letters of
# _UNDECOMPOSABLE_LETTERS, which NFKC can merge with a following accent into a letter the
# translation misses (ø + U+0301 is ǿ, which folds to ø). tests/core/test_matching_fast_paths.py
# checks that the result equals fold_unicode's.
_LATIN = (range(0xA0, 0x250), range(0x300, 0x370), range(0x1E00, 0x1F00))


@cache
def _latin_folds(*, casefold: bool) -> list[str | int]:
    """The translation table, as a list indexed by code point: translate() looks a list up
    without hashing (a dict table took 2-4 times as long per name); characters past its end
    stay as they are, as do those that map to their own code."""
    table: list[str | int] = list(range(_LATIN[-1].stop))
    for block in _LATIN:
        for code in block:
            char = chr(code)
            if char in _UNDECOMPOSABLE_LETTERS_TEXT:
                continue
            folded = unicodedata.normalize("NFKC", char)
            if not folded.isascii():
                decomposed = unicodedata.normalize("NFKD", folded)
                folded = unicodedata.normalize("NFC", _ACCENTS.sub("", decomposed))
            folded = folded.casefold() if casefold else folded
            if folded.isascii():
                table[code] = folded
    return table


def _then(first: Normalizer, second: Normalizer) -> Normalizer:
    return lambda value: second(first(value))
