"""A person's packed book keeps its ids' shared beginning once, and gives back exact ids."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from m365pbx.core.contacts import ContactEntry, ContactIndex, Source, Viewer, entry, packed
from m365sim.outlook.model import exchange_item_id

# Any text a Graph id could hold but the record's separators (control characters), in
# several scripts so that a shared beginning may end inside a multi-byte character.
_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0x1FFFF,
                       blacklist_categories=("Cs",))
_TEXT = st.text(_CHARS, max_size=8)
_SHARED = st.builds(lambda base, tails: [base + tail for tail in tails],
                    st.text(_CHARS, max_size=60), st.lists(_TEXT, min_size=1, max_size=12))
_PREFIXED = st.builds(lambda whole, cuts: [whole[:cut] for cut in cuts],  # one id begins another
                      st.text(_CHARS, min_size=1, max_size=80),
                      st.lists(st.integers(0, 80), min_size=1, max_size=8))
# Characters whose UTF-8 forms share their first bytes: a common beginning ends inside one.
_NEAR = st.builds(lambda base, tails: [base + tail for tail in tails],
                  st.text(_CHARS, min_size=30, max_size=60),
                  st.lists(st.text(st.sampled_from("éèê€₤𐀀𐀁a"), max_size=3), min_size=1,
                           max_size=12))
_IDS = st.one_of(st.lists(_TEXT, min_size=1, max_size=12), _SHARED, _PREFIXED, _NEAR,
                 st.builds(lambda a, b: a + b, _SHARED, st.lists(_TEXT, max_size=6)))


def contact(id: str, version: int = 0) -> ContactEntry:
    return entry(id, Source.PERSONAL, region="DE", display_name=f"Name {len(id)} v{version}",
                 emails=[f"n{version}@example.com"],
                 phones=[("business", f"030 {1000000 + len(id)}")])


def check(book: packed.Book, held: dict[str, tuple[ContactEntry, int]]) -> None:
    """The book holds exactly `held` (id: entry, folder), sorted, and finds each id."""
    prefix = packed.prefix_of(book)
    records = packed.records(book)
    assert packed.count(book) == len(records) == len(held)
    assert list(records) == sorted(records)
    assert [packed.unpack(record, prefix).id for record in records] == sorted(held)
    for record in records:
        item, folder = held[packed.unpack(record, prefix).id]
        assert packed.unpack(record, prefix) == item
        assert prefix + record == packed.pack(item, folder)  # nothing lost or changed
        assert packed.words_of_record(record) == list(item.words)
        assert packed.mails_of_record(record) == list(item.emails)
    assert packed.entry_ids(book) == set(held)
    for folder in range(3):
        assert packed.entry_ids(book, folder) == {
            id for id, (_, put_with) in held.items() if put_with == folder}
    if not any(folder for _, folder in held.values()):  # make_book puts all with folder 0
        assert book == packed.make_book(item for item, _ in held.values())


@settings(max_examples=300, deadline=None)
@given(_IDS, st.data())
def test_puts_and_removes_keep_exact_ids_whatever_they_share(
        ids: list[str], data: st.DataObject) -> None:
    book: packed.Book = ()
    held: dict[str, tuple[ContactEntry, int]] = {}
    steps = data.draw(st.lists(st.tuples(st.sampled_from(ids), st.booleans(),
                                         st.integers(0, 2)), max_size=40))
    for version, (id, remove, folder) in enumerate(steps):
        if remove:
            kept = packed.remove(book, id)
            assert (kept is not None) == (id in held)
            if kept is not None:
                book = kept
                del held[id]
        else:
            item = contact(id, version)
            book = packed.put(book, item, folder)
            held[id] = (item, folder)
        check(book, held)
    for id in ids:
        if id not in held:
            assert packed.remove(book, id) is None
    assert packed.make_book([]) == ()


@settings(max_examples=200, deadline=None)
@given(_IDS)
def test_a_book_made_at_once_holds_every_id_exactly(ids: list[str]) -> None:
    items = [contact(id) for id in ids]
    book = packed.make_book(items)
    check(book, {item.id: (item, 0) for item in items})


def test_graph_ids_are_kept_once_per_book_and_answers_carry_them_whole() -> None:
    mailbox = uuid.uuid4()
    ids = [exchange_item_id(mailbox, "contacts", 7_000 + n) for n in range(20)]
    index = ContactIndex()
    for n, id in enumerate(ids):
        index.put_personal("t", "anna", entry(id, Source.PERSONAL, region="DE",
                                              display_name=f"Kunde {n:02}",
                                              phones=[("business", f"030 55501{n:02}")]))
    viewer = Viewer("anna", "t", "DE")
    book = packed.make_book(contact(id) for id in ids)
    assert len(packed.prefix_of(book)) > 130  # of 152: the records hold only the tails
    assert [hit.entry.id for hit in index.search(viewer, "kunde", limit=50).hits] == ids
    found = index.lookup(viewer, "+49 30 5550107").found
    assert found is not None and found.id == ids[7]
    assert index.personal_ids("t", "anna") == set(ids)
    # A contact in another folder shares less: the book keeps less in common, answers alike.
    other = exchange_item_id(mailbox, "Kunden", 9_000)
    index.put_personal("t", "anna", entry(other, Source.PERSONAL, region="DE",
                                          display_name="Lieferant",
                                          phones=[("business", "089 123456")]))
    assert index.personal_ids("t", "anna") == {*ids, other}
    found = index.lookup(viewer, "089 123456").found
    assert found is not None and found.id == other
    assert index.remove_personal("t", "anna", other)
    assert not index.remove_personal("t", "anna", other)
    assert index.remove_personal("t", "anna", ids[0])
    assert [hit.entry.id for hit in index.search(viewer, "kunde", limit=50).hits] == ids[1:]
    assert index.size()["personal"] == 19


def test_a_kept_book_put_back_after_a_restart_answers_as_before() -> None:
    # The store keeps `book()` as it is; putting it back must not reorder the prefix into
    # the records (a merge once sorted the kept book: every lookup then missed).
    mailbox = uuid.uuid4()
    # Tails that sort before the shared beginning ("0AAA=" < "AAMk…").
    ids = [exchange_item_id(mailbox, "contacts", 70_000 + n) for n in range(12)]
    before = ContactIndex()
    for n, id in enumerate(ids):
        before.put_personal("t", "anna", entry(id, Source.PERSONAL, region="DE",
                                               display_name=f"Kunde {n:02}",
                                               phones=[("business", f"030 44402{n:02}")]))
    after = ContactIndex()
    after.set_book("t", "anna", before.book("t", "anna"))
    viewer = Viewer("anna", "t", "DE")
    assert [hit.entry.id for hit in after.search(viewer, "kunde", limit=50).hits] == ids
    found = after.lookup(viewer, "+49 30 4440205").found
    assert found is not None and found.id == ids[5]
    assert after.personal_ids("t", "anna") == set(ids)
