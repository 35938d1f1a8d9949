"""One searchable contact, and the text and number normalisation the index applies."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from enum import StrEnum

import phonenumbers

from m365pbx.core.matching.normalize import fold_unicode

# Words are letters and digits; anything else (spaces, dots, @, hyphens) separates them.
_WORD_SPLIT = re.compile(r"[\W_]+")
# A written number: digits with the usual separators, an optional + and an extension.
_NUMBER_LIKE = re.compile(r"^\+?[\d\s()./\-]+((x|ext\.?|extension)\s*\d+)?$", re.IGNORECASE)
_MIN_NUMBER_DIGITS = 2
# Ligatures and letters without a decomposition, as people type them on a plain keyboard.
_LIGATURES = str.maketrans({"æ": "ae", "œ": "oe", "þ": "th", "ð": "d"})


class Source(StrEnum):
    """Where a contact came from, in the order a caller lookup prefers them."""

    PERSONAL = "personal"  # the person's own Outlook contacts (every folder)
    DIRECTORY = "directory"  # the organisation's users (Entra ID)
    ORGANISATION = "organisation"  # organisational contacts (orgContact)


@dataclass(frozen=True, slots=True)
class Phone:
    """A number as written, its kind, and its key (None: unreadable)."""

    kind: str  # business, home, mobile
    written: str
    key: str | None

    def digit_forms(self) -> tuple[str, ...]:
        """Digit strings the number is found by as a prefix: full, national, national with 0."""
        if self.key is None:
            return ()
        if self.key.startswith("#"):
            return (self.key[1:],)
        main, _, extension = self.key.partition(";ext=")
        full = main[1:] + extension
        national = national_digits(main)
        if not national:
            return (full,)
        return (full, national + extension, "0" + national + extension)


    def forms(self) -> tuple[str, str]:
        """The digits it is found by as a prefix: full, and national ("" if none).

        A query prefix p finds it when the full or the national digits begin with p, or p
        is 0 followed by the beginning of the national digits (`digit_forms` spelled out).
        """
        if self.key is None:
            return "", ""
        if self.key.startswith("#"):
            return self.key[1:], ""
        main, _, extension = self.key.partition(";ext=")
        national = national_digits(main)
        return main[1:] + extension, national + extension if national else ""


def national_digits(e164: str) -> str:
    """The national significant number of an E.164 number ("" if no country code fits)."""
    # Country calling codes are prefix-free: the first of 1 to 3 digits that is one wins.
    for length in (1, 2, 3):
        if int(e164[1:1 + length] or 0) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return e164[1 + length:]
    return ""


@dataclass(frozen=True, slots=True)
class ContactEntry:
    """A contact as the index keeps it (small: a million of them are held in memory)."""

    id: str
    source: Source
    display_name: str
    company: str = ""
    job_title: str = ""
    emails: tuple[str, ...] = ()
    phones: tuple[Phone, ...] = ()
    # The folded words of names, company and mail addresses, interned (built by `entry()`).
    words: tuple[str, ...] = field(default=(), compare=False)
    full_name: str = field(default="", compare=False)


def fold(text: str) -> str:
    """Text compared case- and accent-insensitively (NFKC, accents off, casefolded)."""
    return fold_unicode(text).casefold().translate(_LIGATURES)


def words_of(text: str) -> list[str]:
    """The folded words of a text."""
    return [word for word in _WORD_SPLIT.split(fold(text)) if word]


def looks_like_number(text: str) -> bool:
    """Whether a query is a written phone number rather than words."""
    stripped = text.strip()
    return (bool(_NUMBER_LIKE.match(stripped))
            and sum(c.isdigit() for c in stripped) >= _MIN_NUMBER_DIGITS)


def number_key(written: str, region: str) -> str | None:
    """A number's key: E.164 (with `;ext=` digits) where `region` reads it, else its digits.

    `region` is the ISO country of numbers written without a country code ("030 1234567"
    in DE). Spaces, dashes, slashes, brackets and Germany's "+49 (0)30" all give one key.
    """
    text = written.strip()
    if not text:
        return None
    try:
        parsed = phonenumbers.parse(text, region.upper() or None)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is not None and phonenumbers.is_possible_number(parsed):
        key = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        return f"{key};ext={parsed.extension}" if parsed.extension else key
    digits = "".join(c for c in text if c.isdigit())
    # Internal extensions and numbers phonenumbers cannot place: compared as digits.
    return f"#{digits}" if len(digits) >= _MIN_NUMBER_DIGITS else None


def entry(
    id: str,
    source: Source,
    *,
    region: str,
    display_name: str = "",
    given_name: str = "",
    surname: str = "",
    company: str = "",
    job_title: str = "",
    emails: tuple[str, ...] | list[str] = (),
    phones: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
) -> ContactEntry:
    """Build an entry: numbers keyed under `region`, its words folded for search."""
    name = display_name.strip() or " ".join(p for p in (given_name, surname) if p).strip()
    if not name:
        name = company.strip() or (emails[0] if emails else "")
    keyed = tuple(Phone(kind, written, number_key(written, region))
                  for kind, written in phones if written.strip())
    words: dict[str, None] = {}  # ordered and unique
    for text in (name, given_name, surname, company, *emails):
        for word in words_of(text):
            words[sys.intern(word)] = None
    return ContactEntry(
        id=id, source=source, display_name=name, company=sys.intern(company),
        job_title=sys.intern(job_title), emails=tuple(emails), phones=keyed,
        words=tuple(words), full_name=" ".join(words_of(name)),
    )
