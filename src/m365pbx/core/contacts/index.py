"""The in-memory contact index: ranked search and caller lookup, scoped per person.

Each person's own contacts live in their own book (their ids' shared beginning once, then
packed records holding the rest; scanned: a word index per person would cost more memory
than the contacts), and the directory and organisational contacts of a tenant in one
indexed shared bucket each. A search or lookup
reads only the books and buckets its viewer may see, so another person's contacts cannot
leak into an answer whatever the query. Ranks: 0 exact (the whole name, a mail address or
the number), 1 every query word begins a word of the contact, 2 fuzzy (every query word
begins a word or is one or two edits away from one).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

from m365pbx.core.contacts import packed
from m365pbx.core.contacts.entry import ContactEntry, Source, fold, number_key
from m365pbx.core.contacts.packed import DIGITS, FULL, KEY, NAME, WORD, Book
from m365pbx.core.contacts.query import (
    EXACT,
    FUZZY,
    FUZZY_MIN_LENGTH,
    PREFIX,
    Query,
    near,
    read_query,
    within_edits,
)
from m365pbx.core.contacts.shared import SharedBucket

__all__ = ["EXACT", "FUZZY", "PREFIX", "ContactIndex", "Hit", "Lookup", "SearchPage",
           "Viewer", "within_edits"]


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking: their Teams user id, tenant, number region and the sources they see."""

    owner: str
    tenant: str
    region: str = "US"
    sources: frozenset[Source] = frozenset(Source)


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result with its rank (0 exact, 1 prefix, 2 fuzzy)."""

    entry: ContactEntry
    rank: int


@dataclass(frozen=True, slots=True)
class SearchPage:
    """A page of ranked results and how many there are in all."""

    total: int
    hits: list[Hit]


@dataclass(frozen=True, slots=True)
class Lookup:
    """The answer to "whose number is this": the first source that knows it, and who."""

    number: str | None  # the normalised key looked up (None: not a number)
    source: Source | None
    matches: list[ContactEntry]

    @property
    def found(self) -> ContactEntry | None:
        """The best entry, or None."""
        return self.matches[0] if self.matches else None


class ContactIndex:
    """Every person's contacts plus each tenant's shared sources, searchable per viewer."""

    def __init__(self) -> None:
        self._personal: dict[tuple[str, str], Book] = {}
        self._shared: dict[tuple[str, Source], SharedBucket] = {}

    # -- changes ---------------------------------------------------------------------

    def put_personal(self, tenant: str, owner: str, item: ContactEntry,
                     folder: int = 0) -> None:
        """Add or replace one of a person's own contacts (`folder`: the reader's number)."""
        self._personal[(tenant, owner)] = packed.put(self._personal.get((tenant, owner), ()),
                                                     item, folder)

    def personal_ids(self, tenant: str, owner: str, folder: int | None = None) -> set[str]:
        """The ids of a person's contacts (of one folder, by the number it was put with)."""
        return packed.entry_ids(self._personal.get((tenant, owner), ()), folder)

    def remove_personal(self, tenant: str, owner: str, entry_id: str) -> bool:
        """Forget one of a person's contacts; return whether it was known."""
        book = self._personal.get((tenant, owner))
        kept = packed.remove(book, entry_id) if book is not None else None
        if kept is None:
            return False
        self._personal[(tenant, owner)] = kept
        return True

    def replace_personal(self, tenant: str, owner: str, items: Iterable[ContactEntry]) -> int:
        """Replace all of a person's contacts; return how many they have now."""
        book = packed.make_book(items)
        self._personal[(tenant, owner)] = book
        return packed.count(book)

    def book(self, tenant: str, owner: str) -> Book:
        """A person's own contacts as packed records (to keep them across restarts)."""
        return self._personal.get((tenant, owner), ())

    def set_book(self, tenant: str, owner: str, book: Book) -> None:
        """Put back a person's kept contacts (a book as `book` gave it, of `packed.FORMAT`)."""
        self._personal[(tenant, owner)] = tuple(book)

    def drop_person(self, tenant: str, owner: str) -> int:
        """Forget a person's contacts at once (they left); return how many were dropped."""
        return packed.count(self._personal.pop((tenant, owner), ()))

    def owners(self, tenant: str) -> set[str]:
        """The people of a tenant whose contacts are held."""
        return {owner for (scope, owner) in self._personal if scope == tenant}

    def replace_shared(self, tenant: str, source: Source, items: Iterable[ContactEntry]) -> int:
        """Replace a tenant's directory or organisational contacts; return their number."""
        bucket = SharedBucket(source, items)
        self._shared[(tenant, source)] = bucket
        return len(bucket)

    def put_shared(self, tenant: str, source: Source, item: ContactEntry) -> None:
        """Add or replace one directory user or organisational contact."""
        bucket = self._shared.get((tenant, source))
        if bucket is None:
            bucket = self._shared[(tenant, source)] = SharedBucket(source)
        bucket.put(item)

    def remove_shared(self, tenant: str, source: Source, entry_id: str) -> bool:
        """Forget one directory user or organisational contact; return whether it was known."""
        bucket = self._shared.get((tenant, source))
        return bucket.remove(entry_id) if bucket is not None else False

    def size(self) -> dict[str, int]:
        """Entries held per source (for metrics)."""
        sizes = {source.value: 0 for source in Source}
        sizes[Source.PERSONAL.value] = sum(map(packed.count, self._personal.values()))
        for (_, source), bucket in self._shared.items():
            sizes[source.value] += len(bucket)
        return sizes

    # -- reading ---------------------------------------------------------------------

    def _visible(self, viewer: Viewer) -> tuple[Book | None, list[SharedBucket]]:
        own = (self._personal.get((viewer.tenant, viewer.owner))
               if Source.PERSONAL in viewer.sources else None)
        shared = [self._shared[(viewer.tenant, source)]
                  for source in (Source.DIRECTORY, Source.ORGANISATION)
                  if source in viewer.sources and (viewer.tenant, source) in self._shared]
        return own, shared

    def search(self, viewer: Viewer, query: str, *, offset: int = 0,
               limit: int = 20) -> SearchPage:
        """Ranked matches of `query` among what `viewer` may see (exact, prefix, fuzzy).

        Order: rank, then source (own contacts first), then folded name. Only the page is
        put in order and unpacked: a short prefix may match most of a large directory.
        """
        asked = read_query(query, viewer.region)
        book, shared = self._visible(viewer)
        own = _scan(packed.records(book), asked) if book else None
        prefix = packed.prefix_of(book) if book else b""
        found = [(bucket, bucket.matches(asked)) for bucket in shared]
        total = sum(map(len, own.values())) if own is not None else 0
        total += sum(len(slots) for _, by_rank in found for slots in by_rank.values())
        need = offset + limit
        chosen: list[tuple[int, SharedBucket | None, bytes | int]] = []
        for rank in (EXACT, PREFIX, FUZZY):
            if own is not None and own[rank] and need > 0:
                records = heapq.nsmallest(need, own[rank], key=packed.order_key)
                chosen.extend((rank, None, record) for record in records)
                need -= len(records)
            for bucket, by_rank in found:
                if by_rank[rank] and need > 0:
                    slots = bucket.first(by_rank[rank], need)
                    chosen.extend((rank, bucket, slot) for slot in slots)
                    need -= len(slots)
        hits = []
        for rank, source, item in chosen[offset:offset + limit]:
            if isinstance(item, bytes):
                hits.append(Hit(packed.unpack(item, prefix), rank))
            elif source is not None:
                hits.append(Hit(source.entry(item), rank))
        return SearchPage(total, hits)

    def lookup(self, viewer: Viewer, number: str) -> Lookup:
        """Who `number` belongs to: own contacts first, then directory, then organisation."""
        key = number_key(number, viewer.region)
        if key is None:
            return Lookup(None, None, [])
        keys = [key]
        if ";ext=" in key:
            keys.append(key.partition(";ext=")[0])  # the main number of a direct dial
        book, shared = self._visible(viewer)
        for wanted in keys:
            if book:
                needle = f"{KEY}{wanted}{KEY}".encode()
                records = sorted((r for r in packed.records(book) if needle in r),
                                 key=packed.order_key)
                if records:
                    prefix = packed.prefix_of(book)
                    return Lookup(key, Source.PERSONAL,
                                  [packed.unpack(r, prefix) for r in records])
            for bucket in shared:
                slots = bucket.with_number(wanted)
                if slots:
                    return Lookup(key, bucket.source, [bucket.entry(s) for s in slots])
        return Lookup(key, None, [])


def _scan(book: Iterable[bytes], query: Query) -> dict[int, list[bytes]]:
    """A person's records matching a query, by rank (their book is scanned, not indexed)."""
    found: dict[int, list[bytes]] = {EXACT: [], PREFIX: [], FUZZY: []}
    if query.number:
        same = f"{KEY}{query.key}{KEY}".encode() if query.key is not None else None
        starts = [start.encode() for start in _number_starts(query.prefixes)]
        for record in book:
            if same is not None and same in record:
                found[EXACT].append(record)
            elif any(start in record for start in starts):
                found[PREFIX].append(record)
        return found
    if not query.words:
        return found
    begins = [f"{WORD}{word}".encode() for word in query.words]
    whole = f"{NAME}{query.whole}{NAME}".encode()
    fuzzy = query.fuzzy
    for record in book:
        if all(begin in record for begin in begins):
            exact = whole in record or (query.address is not None and any(
                fold(mail) == query.address for mail in packed.mails_of_record(record)))
            found[EXACT if exact else PREFIX].append(record)
        elif fuzzy and _near_all(record, query, begins):
            found[FUZZY].append(record)
    return found


def _near_all(record: bytes, query: Query, begins: list[bytes]) -> bool:
    """Whether each query word begins a word of the record or is near one (fuzzy)."""
    words: list[str] | None = None
    for wanted, begin in zip(query.words, begins, strict=True):
        if begin in record:
            continue
        if len(wanted) < FUZZY_MIN_LENGTH:
            return False
        if words is None:
            words = packed.words_of_record(record)
        if not any(near(word, wanted) for word in words):
            return False
    return True


def _number_starts(prefixes: Iterable[str]) -> list[str]:
    """What a record holds when one of its numbers begins with one of `prefixes`.

    The full digits are the key's ("+49..." or "#..."), or a FULL form for a key with an
    extension; national digits are a DIGITS form, also found by 0 and their beginning.
    """
    starts: dict[str, None] = {}
    for prefix in prefixes:
        for start in (f"{KEY}+{prefix}", f"{KEY}#{prefix}", f"{FULL}{prefix}",
                      f"{DIGITS}{prefix}"):
            starts[start] = None
        if prefix.startswith("0"):
            starts[f"{DIGITS}{prefix[1:]}"] = None
    return list(starts)
