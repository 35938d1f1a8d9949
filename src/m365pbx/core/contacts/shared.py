"""A tenant's shared source (directory, organisational contacts), indexed for search.

Entries are packed records in numbered slots. Words, digit forms, number keys, full names
and mail addresses are each a sorted list of keys with the slot of each beside it in an
array (a prefix's slots are one slice), and the slots are kept in the order results are
shown. Every structure is kept current at each change, so the first search after a
directory change pays nothing for it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator

from m365pbx.core.contacts.entry import ContactEntry, Source, fold
from m365pbx.core.contacts.packed import pack, unpack
from m365pbx.core.contacts.query import EXACT, FUZZY, FUZZY_MIN_LENGTH, PREFIX, Query, near

_LAST = "\U0010ffff"  # after every character a word may hold
# Results at least this share of the source are put in order walking the name order from
# its start; fewer from their first result on; up to this many are sorted.
_WALK_SHARE = 8
_SORT_UP_TO = 64
_LABEL_GAP = 1 << 32

class _Pairs:
    """Keys (words, digit forms, numbers, names) with the slot holding each, sorted by key.

    Two list entries a pair (a word is one interned string however many entries hold it,
    a slot one int however many keys it has): far smaller than a set or tuple per key,
    and a prefix's slots are one slice.
    """

    __slots__ = ("keys", "slots")

    def __init__(self, pairs: Iterable[tuple[str, int]] = ()) -> None:
        ordered = sorted(pairs)
        self.keys = [key for key, _ in ordered]
        self.slots = [slot for _, slot in ordered]

    def add(self, key: str, slot: int) -> None:
        at = bisect_right(self.keys, key)
        self.keys.insert(at, key)
        self.slots.insert(at, slot)

    def discard(self, key: str, slot: int) -> None:
        low, high = bisect_left(self.keys, key), bisect_right(self.keys, key)
        if slot in self.slots[low:high]:
            at = self.slots.index(slot, low, high)
            del self.keys[at]
            del self.slots[at]

    def exactly(self, key: str) -> list[int]:
        """The slots holding `key`."""
        return self.slots[bisect_left(self.keys, key):bisect_right(self.keys, key)]

    def starting(self, prefix: str) -> set[int]:
        """The slots holding a key that begins with `prefix`."""
        keys = self.keys
        return set(self.slots[bisect_left(keys, prefix):bisect_left(keys, prefix + _LAST)])

    def keys_starting(self, prefix: str) -> Iterator[str]:
        """The distinct keys beginning with `prefix`, in order."""
        keys = self.keys
        at, end = bisect_left(keys, prefix), bisect_left(keys, prefix + _LAST)
        while at < end:
            key = keys[at]
            yield key
            at = bisect_right(keys, key, at, end)  # over the other entries holding it


class SharedBucket:
    """One shared source of a tenant: packed entries with word, number and name indexes."""

    __slots__ = ("free", "full", "labels", "mails", "names", "national", "numbers", "order",
                 "records", "slot_of", "sort_keys", "source", "words")

    def __init__(self, source: Source, items: Iterable[ContactEntry] = ()) -> None:
        self.source = source
        self.records: list[bytes | None] = []
        self.sort_keys: list[str] = []  # folded full name, NUL, id ("" in a free slot)
        self.slot_of: dict[str, int] = {}
        self.free: list[int] = []
        self.order: list[int] = []  # slots in the order results are shown
        # Per slot a number growing along `order` (gaps left for insertions): results are
        # put in order comparing ints, not names.
        self.labels: list[int] = []
        self.words = _Pairs()
        self.full = _Pairs()  # each number's full digits
        self.national = _Pairs()  # its national digits (a query may add a 0)
        self.numbers = _Pairs()  # number keys
        self.names = _Pairs()  # folded full names
        self.mails = _Pairs()  # folded mail addresses
        self._fill(items)

    def __len__(self) -> int:
        return len(self.slot_of)

    def _fill(self, items: Iterable[ContactEntry]) -> None:
        latest = {item.id: item for item in items}
        pairs: dict[str, list[tuple[str, int]]] = {name: [] for name in _INDEXES}
        for slot, item in enumerate(latest.values()):
            self.records.append(pack(item))
            self.sort_keys.append(f"{item.full_name}\0{item.id}")
            self.slot_of[item.id] = slot
            for name, key in _keys(item):
                pairs[name].append((key, slot))
        for name in _INDEXES:
            setattr(self, name, _Pairs(pairs[name]))
        self.order = sorted(range(len(self.records)), key=self.sort_keys.__getitem__)
        self._relabel()

    def _relabel(self) -> None:
        labels = [0] * len(self.records)
        for place, slot in enumerate(self.order, 1):
            labels[slot] = place * _LABEL_GAP
        self.labels = labels

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
        self._place(slot)
        for name, key in _keys(item):
            getattr(self, name).add(key, slot)

    def _place(self, slot: int) -> None:
        """Put a new slot into the name order with a label between its neighbours'."""
        order, labels = self.order, self.labels
        at = bisect_left(order, self.sort_keys[slot], key=self.sort_keys.__getitem__)
        order.insert(at, slot)
        if slot >= len(labels):
            labels.append(0)
        low = labels[order[at - 1]] if at > 0 else 0
        high = labels[order[at + 1]] if at + 1 < len(order) else low + 2 * _LABEL_GAP
        if high - low < 2:
            self._relabel()  # no gap left here (rare): number them all afresh
        else:
            labels[slot] = (low + high) // 2

    def remove(self, entry_id: str) -> bool:
        """Forget an entry; return whether it was there."""
        slot = self.slot_of.pop(entry_id, None)
        if slot is None:
            return False
        old = self.entry(slot)
        del self.order[bisect_left(self.order, self.labels[slot], key=self.labels.__getitem__)]
        self.labels[slot] = 0
        for name, key in _keys(old):
            getattr(self, name).discard(key, slot)
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
        return sorted(self.numbers.exactly(key), key=self.labels.__getitem__)

    def first(self, slots: set[int], need: int) -> list[int]:
        """The first `need` of `slots` in result order.

        Walking the name order meets a page of a large result early; a smaller one starts
        the walk at its first slot (results often sit together: everyone named Zoë).
        """
        label = self.labels.__getitem__
        if len(slots) <= max(need, _SORT_UP_TO):
            return sorted(slots, key=label)[:need]
        order = self.order
        at = 0
        if len(slots) * _WALK_SHARE < len(order):
            at = bisect_left(order, min(map(label, slots)), key=label)
        found: list[int] = []
        step = need * _WALK_SHARE
        while len(found) < need and at < len(order):
            found += filter(slots.__contains__, order[at:at + step])
            at += step
        return found[:need]

    def matches(self, query: Query) -> dict[int, set[int]]:
        """The slots matching a query, by rank."""
        if query.number:
            same = set(self.numbers.exactly(query.key)) if query.key is not None else set()
            found: list[set[int]] = []
            for prefix in query.prefixes:
                found += [self.full.starting(prefix), self.national.starting(prefix)]
                if prefix.startswith("0"):
                    found.append(self.national.starting(prefix[1:]))
            begun = set().union(*found)
            return {EXACT: same, PREFIX: begun - same if same else begun, FUZZY: set()}
        if not query.words:
            return {EXACT: set(), PREFIX: set(), FUZZY: set()}
        per_word = [self.words.starting(word) for word in query.words]
        begun = _all_of(per_word)
        whole = set(self.names.exactly(query.whole))
        if query.address is not None:
            whole.update(self.mails.exactly(query.address))
        exact = begun & whole
        fuzzy: set[int] = set()
        if query.fuzzy:
            near_sets = [self._fuzzy(word, ids)
                         for word, ids in zip(query.words, per_word, strict=True)]
            if any(near is not ids for near, ids in zip(near_sets, per_word, strict=True)):
                fuzzy = _all_of(near_sets) - begun
        return {EXACT: exact, PREFIX: begun - exact if exact else begun, FUZZY: fuzzy}

    def _fuzzy(self, wanted: str, begun: set[int]) -> set[int]:
        """Slots with a word near `wanted`, plus `begun` (those with a word it begins)."""
        if len(wanted) < FUZZY_MIN_LENGTH:
            return begun
        close = [self.words.exactly(word) for word in self.words.keys_starting(wanted[0])
                 if not word.startswith(wanted) and near(word, wanted)]  # else in `begun`
        return begun.union(*close) if close else begun


_INDEXES = ("words", "full", "national", "numbers", "names", "mails")


def _keys(item: ContactEntry) -> list[tuple[str, str]]:
    """(index, key) of everything an entry is found by."""
    keys = [("words", word) for word in item.words]
    for phone in item.phones:
        if phone.key is not None:
            full, national = phone.forms()
            keys += [("numbers", phone.key), ("full", full)]
            if national:
                keys.append(("national", national))
    keys.append(("names", item.full_name))
    keys += [("mails", fold(mail)) for mail in item.emails]
    return list(dict.fromkeys(keys))  # two phones with one number: one pair


def _all_of(sets: list[set[int]]) -> set[int]:
    """The slots in every set (a new set or one of them: never changed in place)."""
    if not sets:
        return set()
    ordered = sorted(sets, key=len)
    if len(ordered) == 1:
        return ordered[0]
    return ordered[0].intersection(*ordered[1:])
