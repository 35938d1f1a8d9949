"""A tenant's shared source (directory, organisational contacts), indexed for search.

Entries are packed records in numbered slots. Words, digit forms, numbers, full names and
mail addresses map to the slots holding them (tuples of ints: the garbage collector stops
tracking them), the words and digit forms also in a sorted list for prefixes, and the
slots in the order results are shown. Every structure is kept current at each change, so
the first search after a directory change pays nothing for it.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Iterable
from itertools import islice

from m365pbx.core.contacts.entry import ContactEntry, Source, fold
from m365pbx.core.contacts.packed import pack, unpack
from m365pbx.core.contacts.query import EXACT, FUZZY, FUZZY_MIN_LENGTH, PREFIX, Query, near

_LAST = "\U0010ffff"  # after every character a word may hold
# A result set at least this share of the source is put in order by walking the name
# order (it meets a page of hits early); a smaller one is sorted.
_WALK_SHARE = 16

Slots = tuple[int, ...]


def _add(index: dict[str, Slots], key: str, slot: int) -> bool:
    """Add `slot` under `key`; return whether the key is new."""
    have = index.get(key)
    if have is None:
        index[key] = (slot,)
        return True
    if slot not in have:
        index[key] = (*have, slot)
    return False


def _discard(index: dict[str, Slots], key: str, slot: int) -> bool:
    """Take `slot` from under `key`; return whether the key is gone."""
    have = index.get(key)
    if have is None or slot not in have:
        return False
    if len(have) == 1:
        del index[key]
        return True
    index[key] = tuple(s for s in have if s != slot)
    return False


class _Prefixes:
    """Words to their slots, and the words in order for prefix ranges (kept sorted)."""

    __slots__ = ("ordered", "slots")

    def __init__(self) -> None:
        self.slots: dict[str, Slots] = {}
        self.ordered: list[str] = []

    def add(self, word: str, slot: int) -> None:
        if _add(self.slots, word, slot):
            insort(self.ordered, word)

    def discard(self, word: str, slot: int) -> None:
        if _discard(self.slots, word, slot):
            del self.ordered[bisect_left(self.ordered, word)]

    def bulk(self, pairs: Iterable[tuple[str, int]]) -> None:
        """Fill an empty index at once (one sort, no tuple copied per slot)."""
        lists: dict[str, list[int]] = {}
        for word, slot in pairs:
            lists.setdefault(word, []).append(slot)
        self.slots = {word: tuple(dict.fromkeys(found)) for word, found in lists.items()}
        self.ordered = sorted(self.slots)

    def starting(self, prefix: str) -> list[str]:
        """The words beginning with `prefix`, in order."""
        ordered = self.ordered
        return ordered[bisect_left(ordered, prefix):bisect_left(ordered, prefix + _LAST)]

    def ids(self, prefix: str) -> set[int]:
        """The slots with a word beginning with `prefix`."""
        return set().union(*map(self.slots.__getitem__, self.starting(prefix)))


class SharedBucket:
    """One shared source of a tenant: packed entries with word, number and name indexes."""

    __slots__ = ("digits", "free", "mails", "names", "numbers", "order", "records",
                 "slot_of", "sort_keys", "source", "words")

    def __init__(self, source: Source, items: Iterable[ContactEntry] = ()) -> None:
        self.source = source
        self.records: list[bytes | None] = []
        self.sort_keys: list[str] = []  # folded full name, NUL, id ("" in a free slot)
        self.slot_of: dict[str, int] = {}
        self.free: list[int] = []
        self.order: list[int] = []  # slots in the order results are shown
        self.words = _Prefixes()
        self.digits = _Prefixes()
        self.numbers: dict[str, Slots] = {}
        self.names: dict[str, Slots] = {}  # folded full name
        self.mails: dict[str, Slots] = {}  # folded mail address
        self._fill(items)

    def __len__(self) -> int:
        return len(self.slot_of)

    def _fill(self, items: Iterable[ContactEntry]) -> None:
        latest = {item.id: item for item in items}
        words: list[tuple[str, int]] = []
        digits: list[tuple[str, int]] = []
        for slot, item in enumerate(latest.values()):
            self.records.append(pack(item))
            self.sort_keys.append(f"{item.full_name}\0{item.id}")
            self.slot_of[item.id] = slot
            words.extend((word, slot) for word in item.words)
            digits.extend((form, slot) for phone in item.phones for form in phone.digit_forms())
            self._index_values(item, slot)
        self.words.bulk(words)
        self.digits.bulk(digits)
        self.order = sorted(range(len(self.records)), key=self.sort_keys.__getitem__)

    def _index_values(self, item: ContactEntry, slot: int) -> None:
        for phone in item.phones:
            if phone.key is not None:
                _add(self.numbers, phone.key, slot)
        _add(self.names, item.full_name, slot)
        for mail in item.emails:
            _add(self.mails, fold(mail), slot)

    def put(self, item: ContactEntry) -> None:
        """Add or replace an entry, keeping every index current."""
        self.remove(item.id)
        if self.free:
            slot = self.free.pop()
            self.records[slot] = pack(item)
            self.sort_keys[slot] = f"{item.full_name}\0{item.id}"
        else:
            slot = len(self.records)
            self.records.append(pack(item))
            self.sort_keys.append(f"{item.full_name}\0{item.id}")
        self.slot_of[item.id] = slot
        insort(self.order, slot, key=self.sort_keys.__getitem__)
        for word in item.words:
            self.words.add(word, slot)
        for phone in item.phones:
            for form in phone.digit_forms():
                self.digits.add(form, slot)
        self._index_values(item, slot)

    def remove(self, entry_id: str) -> bool:
        """Forget an entry; return whether it was there."""
        slot = self.slot_of.pop(entry_id, None)
        if slot is None:
            return False
        record = self.records[slot]
        assert record is not None
        old = unpack(record)
        at = bisect_left(self.order, self.sort_keys[slot], key=self.sort_keys.__getitem__)
        del self.order[at]
        for word in old.words:
            self.words.discard(word, slot)
        for phone in old.phones:
            for form in phone.digit_forms():
                self.digits.discard(form, slot)
            if phone.key is not None:
                _discard(self.numbers, phone.key, slot)
        _discard(self.names, old.full_name, slot)
        for mail in old.emails:
            _discard(self.mails, fold(mail), slot)
        self.records[slot] = None
        self.sort_keys[slot] = ""
        self.free.append(slot)
        return True

    # -- reading ---------------------------------------------------------------------

    def entry(self, slot: int) -> ContactEntry:
        """The entry in a slot."""
        record = self.records[slot]
        assert record is not None
        return unpack(record)

    def with_number(self, key: str) -> list[int]:
        """The slots with this number key, in result order."""
        return sorted(self.numbers.get(key, ()), key=self.sort_keys.__getitem__)

    def first(self, slots: set[int], need: int) -> list[int]:
        """The first `need` of `slots` in result order."""
        key = self.sort_keys.__getitem__
        if len(slots) <= need:
            return sorted(slots, key=key)
        if len(slots) * _WALK_SHARE >= len(self.order):
            return list(islice(filter(slots.__contains__, self.order), need))
        return heapq.nsmallest(need, slots, key=key)

    def matches(self, query: Query) -> dict[int, set[int]]:
        """The slots matching a query, by rank."""
        if query.number:
            same = set(self.numbers.get(query.key, ())) if query.key is not None else set()
            begun = set().union(*(self.digits.ids(p) for p in query.prefixes))
            return {EXACT: same, PREFIX: begun - same if same else begun, FUZZY: set()}
        if not query.words:
            return {EXACT: set(), PREFIX: set(), FUZZY: set()}
        per_word = [self.words.ids(word) for word in query.words]
        begun = _all_of(per_word)
        whole = set(self.names.get(query.whole, ()))
        if query.address is not None:
            whole.update(self.mails.get(query.address, ()))
        exact = begun & whole
        fuzzy: set[int] = set()
        if query.fuzzy:
            fuzzy = _all_of([self._fuzzy(word, ids)
                             for word, ids in zip(query.words, per_word, strict=True)]) - begun
        return {EXACT: exact, PREFIX: begun - exact if exact else begun, FUZZY: fuzzy}

    def _fuzzy(self, wanted: str, begun: set[int]) -> set[int]:
        """Slots with a word near `wanted`, plus `begun` (those with a word it begins)."""
        if len(wanted) < FUZZY_MIN_LENGTH:
            return begun
        close = [self.words.slots[word] for word in self.words.starting(wanted[0])
                 if near(word, wanted)]
        return begun.union(*close) if close else begun


def _all_of(sets: list[set[int]]) -> set[int]:
    """The slots in every set (a new set or one of them: never changed in place)."""
    if not sets:
        return set()
    ordered = sorted(sets, key=len)
    if len(ordered) == 1:
        return ordered[0]
    return ordered[0].intersection(*ordered[1:])
