"""The in-memory contact index: ranked search and caller lookup, scoped per person.

Each person's own contacts live in their own bucket, and the directory and organisational
contacts of a tenant in one shared bucket each. A search or lookup reads only the buckets
its viewer may see, so another person's contacts cannot leak into an answer whatever the
query. Ranks: 0 exact (the whole name, a mail address or the number), 1 every query word
begins a word of the contact, 2 fuzzy (every query word begins a word or is one or two
edits away from one).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from m365pbx.core.contacts.entry import (
    ContactEntry,
    Phone,
    Source,
    fold,
    looks_like_number,
    number_key,
    words_of,
)

EXACT, PREFIX, FUZZY = 0, 1, 2
_FUZZY_MIN_LENGTH = 4  # shorter words only match exactly or as a prefix
_FUZZY_TWO_EDITS = 8  # words this long may be two edits away
# A person's own bucket keeps a number index from this many contacts on (below, a scan of
# their numbers is quicker than the index is large).
_NUMBER_INDEX_FROM = 128


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


class _Prefixes:
    """Words to the entries holding them, searchable by prefix (sorted on demand)."""

    __slots__ = ("_sorted", "words")

    def __init__(self) -> None:
        self.words: dict[str, set[str]] = {}
        self._sorted: list[str] | None = None

    def add(self, word: str, entry_id: str) -> None:
        if word not in self.words:
            self._sorted = None
        self.words.setdefault(word, set()).add(entry_id)

    def discard(self, word: str, entry_id: str) -> None:
        found = self.words.get(word)
        if found is not None:
            found.discard(entry_id)
            if not found:
                del self.words[word]
                self._sorted = None

    def starting(self, prefix: str) -> Iterator[str]:
        if self._sorted is None:
            self._sorted = sorted(self.words)
        ordered = self._sorted
        at = bisect_left(ordered, prefix)
        while at < len(ordered) and ordered[at].startswith(prefix):
            yield ordered[at]
            at += 1

    def ids(self, prefix: str) -> set[str]:
        found: set[str] = set()
        for word in self.starting(prefix):
            found |= self.words[word]
        return found


class _Bucket:
    """Entries of one owner (or one shared source) with their number and word indexes.

    A person's own contacts are few: their words are scanned, not indexed (a word index
    per person would cost more memory than the contacts). The shared sources are indexed.
    """

    __slots__ = ("_positions", "digits", "entries", "indexed", "names", "numbers")

    def __init__(self, indexed: bool) -> None:
        self.indexed = indexed
        self.entries: dict[str, ContactEntry] = {}
        # Numbers to entry ids; a small unindexed bucket scans its entries instead.
        self.numbers: dict[str, tuple[str, ...]] | None = {} if indexed else None
        self.names = _Prefixes()
        self.digits = _Prefixes()
        # Each entry's place in name order (indexed buckets; made again after a change).
        self._positions: dict[str, int] | None = None

    def order_key(self) -> Callable[[str], Any]:
        """A key putting entry ids in the order results are shown: folded name, then id."""
        entries = self.entries
        if not self.indexed:
            return lambda entry_id: (entries[entry_id].full_name, entry_id)
        if self._positions is None:
            ordered = sorted(entries.values(), key=lambda e: (e.full_name, e.id))
            self._positions = {item.id: place for place, item in enumerate(ordered)}
        return self._positions.__getitem__

    def put(self, item: ContactEntry) -> None:
        self.remove(item.id)
        self._positions = None
        self.entries[item.id] = item
        if self.numbers is None and len(self.entries) >= _NUMBER_INDEX_FROM:
            self.numbers = {}
            for each in self.entries.values():
                self._index_numbers(each, self.numbers)
        elif self.numbers is not None:
            self._index_numbers(item, self.numbers)
        if self.indexed:
            for word in item.words:
                self.names.add(word, item.id)
            for phone in item.phones:
                for form in phone.digit_forms():
                    self.digits.add(form, item.id)

    def remove(self, entry_id: str) -> bool:
        old = self.entries.pop(entry_id, None)
        if old is None:
            return False
        self._positions = None
        numbers = self.numbers
        if numbers is not None:
            for phone in old.phones:
                ids = tuple(i for i in numbers.get(phone.key or "", ()) if i != entry_id)
                if ids:
                    numbers[phone.key or ""] = ids
                else:
                    numbers.pop(phone.key or "", None)
        if self.indexed:
            for word in old.words:
                self.names.discard(word, entry_id)
            for phone in old.phones:
                for form in phone.digit_forms():
                    self.digits.discard(form, entry_id)
        return True

    @staticmethod
    def _index_numbers(item: ContactEntry, numbers: dict[str, tuple[str, ...]]) -> None:
        for phone in item.phones:
            if phone.key is not None and item.id not in numbers.get(phone.key, ()):
                numbers[phone.key] = (*numbers.get(phone.key, ()), item.id)

    def with_number(self, key: str) -> tuple[str, ...]:
        """The ids of the entries with this number key."""
        if self.numbers is not None:
            return self.numbers.get(key, ())
        return tuple(item.id for item in self.entries.values()
                     if any(phone.key == key for phone in item.phones))

    def prefix_ids(self, prefix: str) -> set[str]:
        """Entries with a word beginning with `prefix`."""
        if not self.indexed:
            return {item.id for item in self.entries.values()
                    if any(word.startswith(prefix) for word in item.words)}
        return self.names.ids(prefix)

    def number_prefix_ids(self, prefixes: Iterable[str]) -> set[str]:
        """Entries with a number whose digits begin with one of `prefixes`."""
        starts = tuple(prefixes)
        if not self.indexed:
            return {item.id for item in self.entries.values()
                    if any(form.startswith(starts) for phone in item.phones
                           for form in phone.digit_forms())}
        ids: set[str] = set()
        for start in starts:
            ids |= self.digits.ids(start)
        return ids

    def fuzzy_ids(self, wanted: str, begun: set[str]) -> set[str]:
        """Entries with a word one or two edits from `wanted`, plus `begun` (its prefix ids)."""
        ids = set(begun)
        if len(wanted) < _FUZZY_MIN_LENGTH:
            return ids
        limit = 2 if len(wanted) >= _FUZZY_TWO_EDITS else 1

        def near(word: str) -> bool:
            return (word[:1] == wanted[:1] and abs(len(word) - len(wanted)) <= limit
                    and within_edits(word, wanted, limit))

        if not self.indexed:
            return ids | {item.id for item in self.entries.values()
                          if any(near(word) for word in item.words)}
        for word in self.names.starting(wanted[0]):
            if near(word):
                ids |= self.names.words[word]
        return ids


def within_edits(a: str, b: str, limit: int) -> bool:
    """Whether `a` becomes `b` with at most `limit` insertions, deletions or substitutions."""
    previous = list(range(len(b) + 1))
    for i, char in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (char != other)))
        if min(current) > limit:
            return False
        previous = current
    return previous[-1] <= limit


class ContactIndex:
    """Every person's contacts plus each tenant's shared sources, searchable per viewer."""

    def __init__(self) -> None:
        self._personal: dict[tuple[str, str], _Bucket] = {}
        self._shared: dict[tuple[str, Source], _Bucket] = {}

    # -- changes ---------------------------------------------------------------------

    def put_personal(self, tenant: str, owner: str, item: ContactEntry) -> None:
        """Add or replace one of a person's own contacts."""
        self._personal.setdefault((tenant, owner), _Bucket(indexed=False)).put(item)

    def remove_personal(self, tenant: str, owner: str, entry_id: str) -> bool:
        """Forget one of a person's contacts; return whether it was known."""
        bucket = self._personal.get((tenant, owner))
        return bucket.remove(entry_id) if bucket is not None else False

    def replace_personal(self, tenant: str, owner: str, items: Iterable[ContactEntry]) -> int:
        """Replace all of a person's contacts; return how many they have now."""
        bucket = _Bucket(indexed=False)
        for item in items:
            bucket.put(item)
        self._personal[(tenant, owner)] = bucket
        return len(bucket.entries)

    def drop_person(self, tenant: str, owner: str) -> int:
        """Forget a person's contacts at once (they left); return how many were dropped."""
        bucket = self._personal.pop((tenant, owner), None)
        return len(bucket.entries) if bucket is not None else 0

    def owners(self, tenant: str) -> set[str]:
        """The people of a tenant whose contacts are held."""
        return {owner for (scope, owner) in self._personal if scope == tenant}

    def replace_shared(self, tenant: str, source: Source, items: Iterable[ContactEntry]) -> int:
        """Replace a tenant's directory or organisational contacts; return their number."""
        bucket = _Bucket(indexed=True)
        for item in items:
            bucket.put(item)
        self._shared[(tenant, source)] = bucket
        return len(bucket.entries)

    def put_shared(self, tenant: str, source: Source, item: ContactEntry) -> None:
        """Add or replace one directory user or organisational contact."""
        self._shared.setdefault((tenant, source), _Bucket(indexed=True)).put(item)

    def remove_shared(self, tenant: str, source: Source, entry_id: str) -> bool:
        """Forget one directory user or organisational contact; return whether it was known."""
        bucket = self._shared.get((tenant, source))
        return bucket.remove(entry_id) if bucket is not None else False

    def size(self) -> dict[str, int]:
        """Entries held per source (for metrics)."""
        sizes = {source.value: 0 for source in Source}
        sizes[Source.PERSONAL.value] = sum(len(b.entries) for b in self._personal.values())
        for (_, source), bucket in self._shared.items():
            sizes[source.value] += len(bucket.entries)
        return sizes

    # -- reading ---------------------------------------------------------------------

    def _visible(self, viewer: Viewer) -> list[_Bucket]:
        buckets = []
        if Source.PERSONAL in viewer.sources:
            own = self._personal.get((viewer.tenant, viewer.owner))
            if own is not None:
                buckets.append(own)
        for source in (Source.DIRECTORY, Source.ORGANISATION):
            shared = self._shared.get((viewer.tenant, source))
            if source in viewer.sources and shared is not None:
                buckets.append(shared)
        return buckets

    def search(self, viewer: Viewer, query: str, *, offset: int = 0,
               limit: int = 20) -> SearchPage:
        """Ranked matches of `query` among what `viewer` may see (exact, prefix, fuzzy).

        Order: rank, then source (own contacts first), then folded name. Only the page is
        put in order: a short prefix may match most of a large directory.
        """
        found: list[tuple[_Bucket, dict[int, list[str]]]] = []
        total = 0
        for bucket in self._visible(viewer):
            by_rank: dict[int, list[str]] = {EXACT: [], PREFIX: [], FUZZY: []}
            for entry_id, rank in _matches(bucket, query, viewer.region):
                by_rank[rank].append(entry_id)
                total += 1
            found.append((bucket, by_rank))
        need = offset + limit
        page: list[Hit] = []
        for rank in (EXACT, PREFIX, FUZZY):
            for bucket, by_rank in found:
                ids = by_rank[rank]
                if not ids or need <= 0:
                    continue
                key = bucket.order_key()
                chosen = (heapq.nsmallest(need, ids, key=key) if len(ids) > need
                          else sorted(ids, key=key))
                page.extend(Hit(bucket.entries[i], rank) for i in chosen)
                need -= len(chosen)
        return SearchPage(total, page[offset:offset + limit])

    def lookup(self, viewer: Viewer, number: str) -> Lookup:
        """Who `number` belongs to: own contacts first, then directory, then organisation."""
        key = number_key(number, viewer.region)
        if key is None:
            return Lookup(None, None, [])
        keys = [key]
        if ";ext=" in key:
            keys.append(key.partition(";ext=")[0])  # the main number of a direct dial
        for wanted in keys:
            for bucket in self._visible(viewer):
                ids = bucket.with_number(wanted)
                if ids:
                    found = sorted((bucket.entries[i] for i in ids),
                                   key=lambda e: (e.full_name, e.id))
                    return Lookup(key, found[0].source, found)
        return Lookup(key, None, [])


def _matches(bucket: _Bucket, query: str, region: str) -> Iterator[tuple[str, int]]:
    if looks_like_number(query):
        key = number_key(query, region)
        same = set(bucket.with_number(key)) if key is not None else set()
        for entry_id in same:
            yield entry_id, EXACT
        digits = "".join(c for c in query if c.isdigit())
        prefixes = {digits}
        if key is not None and not key.startswith("#"):
            forms = Phone("", query, key).digit_forms()
            # Full and national with its 0: "+49 (0)30 12" and "030 12" both begin 030 12...
            prefixes |= {forms[0], forms[-1]}
        near = bucket.number_prefix_ids(prefixes)
        for entry_id in near - same:
            yield entry_id, PREFIX
        return
    wanted = words_of(query)
    if not wanted:
        return
    whole = " ".join(wanted)
    address = fold(query.strip())
    per_word = [bucket.prefix_ids(word) for word in wanted]
    begun = _all_of(per_word)
    fuzzy: set[str] = set()
    if any(len(word) >= _FUZZY_MIN_LENGTH for word in wanted):
        fuzzy = _all_of(bucket.fuzzy_ids(word, ids)
                        for word, ids in zip(wanted, per_word, strict=True)) - begun
    entries = bucket.entries
    if "@" not in address:
        for entry_id in begun:
            yield entry_id, EXACT if entries[entry_id].full_name == whole else PREFIX
    else:  # only a query with an @ can be a whole mail address
        for entry_id in begun:
            item = entries[entry_id]
            whole_match = item.full_name == whole or any(fold(e) == address
                                                         for e in item.emails)
            yield entry_id, EXACT if whole_match else PREFIX
    for entry_id in fuzzy:
        yield entry_id, FUZZY


def _all_of(sets: Iterable[set[str]]) -> set[str]:
    result: set[str] | None = None
    for ids in sets:
        result = set(ids) if result is None else result & ids
        if not result:
            return set()
    return result or set()
