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
they hold.

A person's book is a tuple (immutable: the garbage collector stops tracking it):
`()` when empty, else `(prefix, record, record, ...)`. `prefix` is the UTF-8 beginning
all its ids share (whole characters; `b""` when they share none, or too little to pay
for its own object) and each record holds only the rest of its id: `prefix + record` is
the record `pack` made. Graph's contact ids are 152 characters, of which those of one
mailbox share the first 108 and those of one folder all but the last dozen (Exchange
encodes the mailbox and folder first), so that part is kept once per book, not per
contact. The records are
sorted by (the rest of) their id, which is the order of the full ids; the prefix is the
common beginning of the first and last id, recomputed at each change, so a book is a
function of its contacts alone. Use `records`, `count`, `prefix_of`, `entry_ids` and
`unpack(record, prefix)` to read one: `record_id` of a book's record is the rest only.
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
"""A person's own contacts: their ids' common prefix, then packed records sorted by id."""
# A prefix is kept when it saves more than its own bytes object costs (its header).
_PREFIX_COST = 40

# Bumped whenever the record layout changes: books kept in the store in another format are
# read again from Outlook rather than misread.
FORMAT = 2  # 2: a book begins with its ids' common prefix, records hold the rest


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


def unpack(record: bytes, prefix: bytes = b"") -> ContactEntry:
    """The entry a record holds (`prefix`: that of the book it is in)."""
    text = (prefix + record if prefix else record).decode()
    id, source, _, name, company, job, mails, phones, search = text.split(_FIELD)
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
    """The record's place in results: folded full name, then id (as bytes, same order).

    Compares the records of one book, or full records: never records of two books.
    """
    start = record.index(_NAME_MARK) + 1
    return record[start:record.index(_NAME_MARK, start)] + b"\0" + record_id(record)


def record_id(record: bytes) -> bytes:
    """The entry id of a record, UTF-8 (in a book: the rest after the book's prefix)."""
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


def prefix_of(book: Book) -> bytes:
    """The beginning all ids of a book share, UTF-8 (the rest is in each record)."""
    return book[0] if book else b""


def records(book: Book) -> Book:
    """The records of a book, in id order (each id without the book's prefix)."""
    return book[1:]


def count(book: Book) -> int:
    """How many contacts a book holds."""
    return len(book) - 1 if book else 0


def entry_ids(book: Book, folder: int | None = None) -> set[str]:
    """The full ids of a book's entries (of one folder, by the number it was put with)."""
    prefix = prefix_of(book)
    return {(prefix + record_id(record)).decode() for record in book[1:]
            if folder is None or folder_of(record) == folder}


def _common(first: bytes, last: bytes, size: int) -> bytes:
    """The prefix a book of `size` records from id `first` to id `last` keeps."""
    cut = next((at for at, (a, b) in enumerate(zip(first, last, strict=False)) if a != b),
               min(len(first), len(last)))
    while cut and cut < len(first) and first[cut] & 0xC0 == 0x80:
        cut -= 1  # within a character: keep it whole in the records
    return first[:cut] if cut * (size - 1) > _PREFIX_COST else b""


def _book(prefix: bytes, rest: list[bytes]) -> Book:
    """The book of records sorted by id, each without `prefix`, with its prefix recomputed."""
    if not rest:
        return ()
    common = _common(prefix + record_id(rest[0]), prefix + record_id(rest[-1]), len(rest))
    if common == prefix:
        return (prefix, *rest)
    if len(common) < len(prefix):
        more = prefix[len(common):]
        return (common, *(more + record for record in rest))
    cut = len(common) - len(prefix)
    return (common, *(record[cut:] for record in rest))


def _place(book: Book, entry_id: bytes) -> tuple[int, bool]:
    """Where a full id is or would go in the book's records, and whether it is there."""
    rest = entry_id[len(book[0]):] + b"\x1f"
    at = bisect_left(book, rest, 1)
    return at, at < len(book) and book[at].startswith(rest)


def put(book: Book, item: ContactEntry, folder: int = 0) -> Book:
    """The book with `item` added or replacing the entry of its id."""
    record = pack(item, folder)
    if not book:
        return _book(b"", [record])
    prefix = book[0]
    if not record.startswith(prefix):
        full = [prefix + old for old in book[1:]]
        return _book(b"", sorted([*full, record]))  # a new id: every id held has the prefix
    at, found = _place(book, record_id(record))
    return _book(prefix, [*book[1:at], record[len(prefix):], *book[at + found:]])


def remove(book: Book, entry_id: str) -> Book | None:
    """The book without that entry (None: it was not there)."""
    wanted = _clean(entry_id).encode()
    if not book or not wanted.startswith(book[0]):
        return None
    at, found = _place(book, wanted)
    return _book(book[0], [*book[1:at], *book[at + 1:]]) if found else None


def make_book(items: Iterable[ContactEntry]) -> Book:
    """A book of these entries (a later entry with an id replaces an earlier one)."""
    by_id = {record_id(record): record for record in map(pack, items)}
    return _book(b"", sorted(by_id.values()))
