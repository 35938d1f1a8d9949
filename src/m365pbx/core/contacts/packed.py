"""Contacts packed for memory: one UTF-8 record per contact, searchable without unpacking.

A million contacts held as objects (the entry, its phones, words and strings) take over a
kilobyte each; packed, a contact is one `bytes` of about 250 (no per-contact objects the
garbage collector walks). The record is the contact's fields, then a search part in
which marker bytes frame each folded word, digit form and number key, so "does a word of
this contact begin with `mül`" is `b"\\x02mül" in record`, done in C:

    id 1F source 1F folder 1F display name 1F company 1F job title 1F mails (1E between)
    1F phones (kind 1D written 04 key 04, 1E between) 1F 05 full name 05 (02 word)*
    (03 national digits | 06 full digits of a key with an extension)*

UTF-8 keeps both word prefixes and the order of code points, so bytes compare as the text
they hold. A person's book is a tuple of their records sorted by id (immutable: the
garbage collector stops tracking it).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable

from m365pbx.core.contacts.entry import ContactEntry, Phone, Source

_FIELD, _ITEM, _PART = "\x1f", "\x1e", "\x1d"
WORD, DIGITS, KEY, NAME, FULL = "\x02", "\x03", "\x04", "\x05", "\x06"
_AFTER_WORDS = re.compile("[\x03\x06]")
_NAME_MARK = NAME.encode()
_CONTROL = re.compile("[\x00-\x1f]")
_SOURCE_CODES = {Source.PERSONAL: "p", Source.DIRECTORY: "d", Source.ORGANISATION: "o"}
_SOURCES = {code: source for source, code in _SOURCE_CODES.items()}

Book = tuple[bytes, ...]
"""A person's own contacts: packed records sorted by id."""

# Bumped whenever the record layout changes: books kept in the store in another format are
# read again from Outlook rather than misread.
FORMAT = 1


def _clean(text: str) -> str:
    # Control characters are the record's separators; a contact's text never needs them.
    return _CONTROL.sub(" ", text) if not text.isprintable() else text


def pack(item: ContactEntry, folder: int = 0) -> bytes:
    """The packed record of an entry (`folder`: a number the owner's reader gave its folder)."""
    phones = _ITEM.join(f"{_clean(p.kind)}{_PART}{_clean(p.written)}{KEY}{p.key or ''}{KEY}"
                        for p in item.phones)
    search = [NAME, item.full_name, NAME]
    search.extend(WORD + word for word in item.words)
    for phone in item.phones:
        full, national = phone.forms()
        if national:
            search.append(DIGITS + national)
        if ";" in (phone.key or ""):  # the full form of any other key is the key's digits
            search.append(FULL + full)
    return _FIELD.join((
        _clean(item.id), _SOURCE_CODES[item.source], str(folder) if folder else "",
        _clean(item.display_name),
        _clean(item.company), _clean(item.job_title),
        _ITEM.join(_clean(mail) for mail in item.emails), phones, "".join(search),
    )).encode()


def unpack(record: bytes) -> ContactEntry:
    """The entry a record holds."""
    id, source, _, name, company, job, mails, phones, search = record.decode().split(_FIELD)
    full_name, _, words = search[1:].partition(NAME)
    return ContactEntry(
        id=id, source=_SOURCES[source], display_name=name, company=company, job_title=job,
        emails=tuple(mails.split(_ITEM)) if mails else (),
        phones=tuple(_phone(text) for text in phones.split(_ITEM)) if phones else (),
        words=tuple(_AFTER_WORDS.split(words, 1)[0].split(WORD)[1:]), full_name=full_name)


def _phone(text: str) -> Phone:
    kind, _, rest = text.partition(_PART)
    written, _, key = rest.partition(KEY)
    return Phone(kind, written, key[:-1] or None)


def order_key(record: bytes) -> bytes:
    """The record's place in results: folded full name, then id (as bytes, same order)."""
    start = record.index(_NAME_MARK) + 1
    return record[start:record.index(_NAME_MARK, start)] + b"\0" + record_id(record)


def record_id(record: bytes) -> bytes:
    """The entry id of a record, UTF-8."""
    return record[:record.index(b"\x1f")]


def words_of_record(record: bytes) -> list[str]:
    """The folded words of a record."""
    search = record[record.rindex(_NAME_MARK) + 1:].decode()
    return _AFTER_WORDS.split(search, 1)[0].split(WORD)[1:]


def mails_of_record(record: bytes) -> list[str]:
    """The mail addresses of a record, as written."""
    mails = record.decode().split(_FIELD)[6]
    return mails.split(_ITEM) if mails else []


def folder_of(record: bytes) -> int:
    """The folder number a record was put with (0: none)."""
    return int(record.split(b"\x1f", 3)[2] or 0)


def _place(book: Book, entry_id: bytes) -> tuple[int, bool]:
    at = bisect_left(book, entry_id + b"\x1f")
    return at, at < len(book) and book[at].startswith(entry_id + b"\x1f")


def put(book: Book, item: ContactEntry, folder: int = 0) -> Book:
    """The book with `item` added or replacing the entry of its id."""
    record = pack(item, folder)
    at, found = _place(book, record_id(record))
    return (*book[:at], record, *book[at + found:])


def remove(book: Book, entry_id: str) -> Book | None:
    """The book without that entry (None: it was not there)."""
    at, found = _place(book, _clean(entry_id).encode())
    return (*book[:at], *book[at + 1:]) if found else None


def make_book(items: Iterable[ContactEntry]) -> Book:
    """A book of these entries (a later entry with an id replaces an earlier one)."""
    by_id = {record_id(record): record for record in map(pack, items)}
    return tuple(sorted(by_id.values()))
