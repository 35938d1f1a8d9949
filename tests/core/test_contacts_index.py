"""The contact index: accents, prefixes, numbers in any format, ranking, scoping."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from m365pbx.core.contacts import (
    EXACT,
    FUZZY,
    PREFIX,
    ContactEntry,
    ContactIndex,
    Source,
    Viewer,
    entry,
    number_key,
    within_edits,
)

ANNA = Viewer("u-anna", "contoso", "DE")
BEN = Viewer("u-ben", "contoso", "DE")


def personal(id: str, name: str, *phones: str, region: str = "DE") -> ContactEntry:
    return entry(id, Source.PERSONAL, region=region, display_name=name,
                 phones=[("business", p) for p in phones])


def sample() -> ContactIndex:
    index = ContactIndex()
    index.put_personal("contoso", "u-anna", entry(
        "c1", Source.PERSONAL, region="DE", display_name="Jürgen Müller",
        given_name="Jürgen", surname="Müller", company="Fabrikam",
        emails=["j.mueller@fabrikam.de"], phones=[("business", "030 1234567")]))
    index.put_personal("contoso", "u-anna", entry(
        "c2", Source.PERSONAL, region="DE", display_name="Zoë Martin",
        phones=[("mobile", "0170-5550100")]))
    index.put_personal("contoso", "u-ben", entry(
        "c3", Source.PERSONAL, region="DE", display_name="Bens Secret Friend",
        phones=[("mobile", "+49 89 999999")]))
    index.replace_shared("contoso", Source.DIRECTORY, [
        entry("u-carl", Source.DIRECTORY, region="DE", display_name="Carl Müllerson",
              emails=["carl@contoso.com"], phones=[("business", "+49 30 1234567")]),
        entry("u-dora", Source.DIRECTORY, region="DE", display_name="Dora Marten",
              phones=[("business", "+49 30 7777 ext. 12")]),
    ])
    index.replace_shared("contoso", Source.ORGANISATION, [
        entry("o-1", Source.ORGANISATION, region="DE", display_name="Hotline Fabrikam",
              company="Fabrikam", phones=[("business", "+49 40 55555")]),
    ])
    return index


def name_of(index: ContactIndex, viewer: Viewer, number: str) -> str | None:
    found = index.lookup(viewer, number).found
    return found.display_name if found is not None else None


def names(index: ContactIndex, viewer: Viewer, query: str) -> list[tuple[str, int]]:
    return [(hit.entry.display_name, hit.rank)
            for hit in index.search(viewer, query, limit=100).hits]


def test_names_are_found_without_case_or_accents_by_any_word_prefix() -> None:
    index = sample()
    assert names(index, ANNA, "jurgen") == [("Jürgen Müller", PREFIX)]
    assert names(index, ANNA, "MUL") == [("Jürgen Müller", PREFIX),
                                         ("Carl Müllerson", PREFIX)]
    assert names(index, ANNA, "zoe martin") == [("Zoë Martin", EXACT)]
    assert names(index, ANNA, "martin") == [("Zoë Martin", PREFIX), ("Dora Marten", FUZZY)]
    assert names(index, ANNA, "fabri") == [("Jürgen Müller", PREFIX),
                                           ("Hotline Fabrikam", PREFIX)]
    assert names(index, ANNA, "j.mueller@fabrikam.de") == [("Jürgen Müller", EXACT)]
    assert names(index, ANNA, "carl@contoso") == [("Carl Müllerson", PREFIX)]


def test_exact_before_prefix_before_fuzzy_then_own_contacts_first() -> None:
    index = ContactIndex()
    index.put_personal("t", "me", entry("a", Source.PERSONAL, region="DE",
                                        display_name="Anna Berg"))
    index.put_personal("t", "me", entry("b", Source.PERSONAL, region="DE",
                                        display_name="Anna Bergmann"))
    index.replace_shared("t", Source.DIRECTORY, [
        entry("c", Source.DIRECTORY, region="DE", display_name="Anna Berk"),
        entry("d", Source.DIRECTORY, region="DE", display_name="Anna Bergen")])
    me = Viewer("me", "t", "DE")
    assert names(index, me, "anna berg") == [
        ("Anna Berg", EXACT), ("Anna Bergmann", PREFIX), ("Anna Bergen", PREFIX),
        ("Anna Berk", FUZZY)]
    page = index.search(me, "anna", offset=1, limit=2)
    assert page.total == 4 and [h.entry.id for h in page.hits] == ["b", "d"]


def test_a_number_in_any_format_finds_the_entry() -> None:
    index = sample()
    for written in ("030 1234567", "+49 (0)30 1234-567", "+49301234567", "0049 30 123 45 67",
                    "(030) 1234567", "030/1234567"):
        found = [h.entry.display_name for h in index.search(ANNA, written).hits
                 if h.rank == EXACT]
        assert found == ["Jürgen Müller", "Carl Müllerson"], written
    assert names(index, ANNA, "030 123") == [("Jürgen Müller", PREFIX),
                                            ("Carl Müllerson", PREFIX)]
    assert names(index, ANNA, "+49 170") == [("Zoë Martin", PREFIX)]


def test_lookup_prefers_own_contacts_then_directory_then_organisation() -> None:
    index = sample()
    own = index.lookup(ANNA, "+49 (0)30 1234-567")
    assert (own.source, [e.display_name for e in own.matches]) == (
        Source.PERSONAL, ["Jürgen Müller"])
    # Ben has no contact with that number: the directory answers.
    assert name_of(index, BEN, "030 1234567") == "Carl Müllerson"
    assert index.lookup(BEN, "040 55555").source is Source.ORGANISATION
    # A direct dial with an extension, and the main number of that switchboard.
    assert name_of(index, ANNA, "+49 30 7777 x12") == "Dora Marten"
    assert index.lookup(ANNA, "+49 30 7777").found is None
    assert index.lookup(ANNA, "hello").number is None
    assert index.lookup(ANNA, "0171 0000000").found is None


def test_several_entries_with_one_number_are_all_returned() -> None:
    index = ContactIndex()
    index.put_personal("t", "me", personal("a", "Front Desk", "+44 20 7946 0000"))
    index.put_personal("t", "me", personal("b", "Reception", "020 7946 0000", region="GB"))
    found = index.lookup(Viewer("me", "t", "GB"), "02079460000")
    assert [e.display_name for e in found.matches] == ["Front Desk", "Reception"]


def test_switching_a_source_off_hides_it() -> None:
    index = sample()
    no_directory = Viewer("u-ben", "contoso", "DE", frozenset({Source.PERSONAL}))
    assert index.lookup(no_directory, "030 1234567").found is None
    assert names(index, no_directory, "carl") == []


def test_a_person_who_leaves_loses_their_contacts_at_once() -> None:
    index = sample()
    assert index.drop_person("contoso", "u-anna") == 2
    assert names(index, ANNA, "jurgen") == []
    assert index.size() == {"personal": 1, "directory": 2, "organisation": 1}


def test_changes_and_removals_update_every_index() -> None:
    index = sample()
    index.put_personal("contoso", "u-anna", entry(
        "c1", Source.PERSONAL, region="DE", display_name="Jürgen Schulz",
        phones=[("business", "089 111111")]))
    assert names(index, ANNA, "müller") == [("Carl Müllerson", PREFIX)]
    assert name_of(index, ANNA, "089 111111") == "Jürgen Schulz"
    assert index.remove_personal("contoso", "u-anna", "c1")
    assert index.lookup(ANNA, "089 111111").found is None
    assert not index.remove_personal("contoso", "u-anna", "c1")


def test_numbers_keys() -> None:
    assert number_key("+49 (0)30 1234-567", "DE") == number_key("030 1234567", "DE")
    assert number_key("030 1234567", "DE") == "+49301234567"
    assert number_key("+49 30 1234 ext. 12", "DE") == "+49301234;ext=12"
    assert number_key("", "DE") is None
    assert within_edits("martin", "marten", 1) and not within_edits("martin", "mertan", 1)


_WORDS = st.text(alphabet="abcdeéüxyz", min_size=1, max_size=6)
_QUERIES = st.text(alphabet="abcdeéüxyz 0123456789+()-", max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    anna=st.lists(st.tuples(_WORDS, st.integers(1_000_000, 9_999_999)), max_size=6),
    ben=st.lists(st.tuples(_WORDS, st.integers(1_000_000, 9_999_999)), max_size=6),
    query=_QUERIES,
)
def test_a_person_never_sees_another_persons_contacts(
    anna: list[tuple[str, int]], ben: list[tuple[str, int]], query: str
) -> None:
    index = ContactIndex()
    for number, (name, phone) in enumerate(anna):
        index.put_personal("t", "anna", personal(f"a{number}", name, f"030 {phone}"))
    for number, (name, phone) in enumerate(ben):
        index.put_personal("t", "ben", personal(f"b{number}", name, f"030 {phone}"))
    viewer = Viewer("anna", "t", "DE")
    seen = [hit.entry.id for hit in index.search(viewer, query, limit=100).hits]
    assert all(found.startswith("a") for found in seen)
    for _, phone in ben:
        assert all(e.id.startswith("a") for e in index.lookup(viewer, f"030 {phone}").matches)


_SEPARATORS = st.sampled_from(["", " ", "-", "/", ".", "  "])


@settings(max_examples=150, deadline=None)
@given(
    area=st.sampled_from(["30", "89", "40", "221", "69", "170", "151"]),
    subscriber=st.text(alphabet="0123456789", min_size=5, max_size=8).filter(
        lambda s: s[0] != "0"),
    style=st.sampled_from(["national", "plus", "plus-zero", "double-zero"]),
    separators=st.lists(_SEPARATORS, min_size=3, max_size=3),
)
def test_any_formatting_of_a_number_finds_the_same_entry(
    area: str, subscriber: str, style: str, separators: list[str]
) -> None:
    index = ContactIndex()
    index.put_personal("t", "me", personal("x", "Somebody", f"0{area} {subscriber}"))
    cut = len(subscriber) // 2
    head, tail = subscriber[:cut], subscriber[cut:]
    prefix = {"national": "0", "plus": "+49 ", "plus-zero": "+49 (0)",
              "double-zero": "0049 "}[style]
    written = f"{prefix}{area}{separators[0]}{head}{separators[1]}{tail}"
    viewer = Viewer("me", "t", "DE")
    assert index.lookup(viewer, written).found is not None, written
    assert [h.entry.id for h in index.search(viewer, written).hits if h.rank == EXACT] == ["x"]


@settings(max_examples=100, deadline=None)
@given(
    people=st.lists(st.tuples(_WORDS, _WORDS, st.integers(1_000_000, 9_999_999)), max_size=8),
    query=_QUERIES,
)
def test_scanned_and_indexed_buckets_answer_alike(
    people: list[tuple[str, str, int]], query: str
) -> None:
    # A person's own contacts are scanned, the shared sources indexed: one answer either way.
    personal, shared = ContactIndex(), ContactIndex()
    entries = [entry(f"e{n}", Source.PERSONAL, region="DE", display_name=f"{a} {b}",
                     phones=[("business", f"030 {phone}")])
               for n, (a, b, phone) in enumerate(people)]
    personal.replace_personal("t", "me", entries)
    shared.replace_shared("t", Source.PERSONAL, [])
    shared.replace_shared("t", Source.DIRECTORY, [
        entry(e.id, Source.DIRECTORY, region="DE", display_name=e.display_name,
              phones=[(p.kind, p.written) for p in e.phones]) for e in entries])
    viewer = Viewer("me", "t", "DE")
    mine = [(h.entry.id, h.rank) for h in personal.search(viewer, query, limit=100).hits]
    ours = [(h.entry.id, h.rank) for h in shared.search(viewer, query, limit=100).hits]
    assert mine == ours


def test_a_large_address_book_gets_a_number_index_and_answers_the_same() -> None:
    index = ContactIndex()
    viewer = Viewer("me", "t", "DE")
    for number in range(300):  # a number index from 128 contacts on
        index.put_personal("t", "me", personal(f"x{number}", f"Kunde {number}",
                                               f"030 {1_000_000 + number}"))
        if number in (5, 127, 128, 299):
            assert name_of(index, viewer, f"+49 30 {1_000_000 + number}") == f"Kunde {number}"
            assert name_of(index, viewer, "+49 30 1000003") == "Kunde 3"
    assert index.remove_personal("t", "me", "x3")
    assert name_of(index, viewer, "+49 30 1000003") is None
    index.put_personal("t", "me", personal("x4", "Kunde Neu", "089 111111"))
    assert name_of(index, viewer, "030 1000004") is None
    assert name_of(index, viewer, "089 111111") == "Kunde Neu"


def test_a_packed_entry_reads_back_as_built() -> None:
    from m365pbx.core.contacts.packed import pack, unpack

    built = entry("AAMk-1=", Source.ORGANISATION, region="DE", display_name="Łukasz Ærø",
                  company="Fabrikam", job_title="Einkauf", emails=["l@fabrikam.de", "x@y.z"],
                  phones=[("business", "+49 30 7777 ext. 12"), ("home", "12"),
                          ("mobile", "n/a")])
    again = unpack(pack(built))
    assert again == built
    assert (again.words, again.full_name) == (built.words, built.full_name)
    # Control characters are the record's separators: a contact's text loses them.
    odd = unpack(pack(entry("c\x1f2", Source.PERSONAL, region="DE", display_name="A\x1eB")))
    assert (odd.id, odd.display_name) == ("c 2", "A B")


_NUMBERS = st.sampled_from(["030 1234567", "+49 30 1234567", "+49 30 7777 x 12", "12",
                            "+44 20 7946 0000", "0170-5550100", "089 111111", "n/a"])
_SHARED_QUERIES = st.one_of(_QUERIES, _NUMBERS, st.sampled_from(
    ["030", "0301", "4930", "+44 20", "301234", "12", "0307777", "49307777", "a@b.c"]))


@settings(max_examples=100, deadline=None)
@given(
    people=st.lists(st.tuples(_WORDS, _WORDS, _NUMBERS, st.booleans()), max_size=8),
    query=_SHARED_QUERIES,
)
def test_every_number_format_is_found_alike_scanned_and_indexed(
    people: list[tuple[str, str, str, bool]], query: str
) -> None:
    entries = [entry(f"e{n}", Source.DIRECTORY, region="DE", display_name=f"{a} {b}",
                     emails=[f"{a}@{b}.de"] if mail else [], phones=[("business", phone)])
               for n, (a, b, phone, mail) in enumerate(people)]
    personal, shared = ContactIndex(), ContactIndex()
    personal.replace_personal("t", "me", entries)
    shared.replace_shared("t", Source.DIRECTORY, entries)
    viewer = Viewer("me", "t", "DE")
    mine = personal.search(viewer, query, limit=100)
    ours = shared.search(viewer, query, limit=100)
    assert mine.total == ours.total
    assert [(h.entry.id, h.rank) for h in mine.hits] == [(h.entry.id, h.rank) for h in ours.hits]
    assert ([e.id for e in personal.lookup(viewer, query).matches]
            == [e.id for e in shared.lookup(viewer, query).matches])


@settings(max_examples=100, deadline=None)
@given(
    changes=st.lists(st.tuples(st.integers(0, 6), st.one_of(st.none(), st.tuples(
        _WORDS, _WORDS, _NUMBERS))), max_size=25),
    query=_SHARED_QUERIES,
)
def test_a_shared_source_changed_one_by_one_answers_as_one_built_at_once(
    changes: list[tuple[int, tuple[str, str, str] | None]], query: str
) -> None:
    # The directory's indexes are kept current at each change: no rebuild, same answers.
    changed, current = ContactIndex(), {}
    for number, change in changes:
        if change is None:
            assert changed.remove_shared("t", Source.DIRECTORY, f"u{number}") == (
                current.pop(f"u{number}", None) is not None)
        else:
            first, last, phone = change
            item = entry(f"u{number}", Source.DIRECTORY, region="DE",
                         display_name=f"{first} {last}", phones=[("business", phone)])
            changed.put_shared("t", Source.DIRECTORY, item)
            current[item.id] = item
    built = ContactIndex()
    built.replace_shared("t", Source.DIRECTORY, current.values())
    viewer = Viewer("me", "t", "DE")
    for offset in (0, 2):
        one = changed.search(viewer, query, offset=offset, limit=3)
        other = built.search(viewer, query, offset=offset, limit=3)
        assert one.total == other.total
        assert [(h.entry, h.rank) for h in one.hits] == [(h.entry, h.rank) for h in other.hits]
    assert changed.lookup(viewer, query) == built.lookup(viewer, query)
    assert changed.size() == built.size()


def test_a_directory_grown_at_one_place_keeps_its_name_order() -> None:
    # Each newcomer sorts first: the gaps between the order's labels run out and renew.
    index = ContactIndex()
    index.replace_shared("t", Source.DIRECTORY, [
        entry("z", Source.DIRECTORY, region="DE", display_name="Zora Ende")])
    for number in range(99, -1, -1):
        index.put_shared("t", Source.DIRECTORY, entry(
            f"u{number:03}", Source.DIRECTORY, region="DE", display_name="Anna Berg",
            phones=[("business", "030 1234567")]))
    viewer = Viewer("me", "t", "DE")
    page = index.search(viewer, "berg", offset=40, limit=3)
    assert page.total == 100 and [h.entry.id for h in page.hits] == ["u040", "u041", "u042"]
    assert [e.id for e in index.lookup(viewer, "030 1234567").matches][:2] == ["u000", "u001"]
    assert index.remove_shared("t", Source.DIRECTORY, "u000")
    assert [h.entry.id for h in index.search(viewer, "a", limit=2).hits] == ["u001", "u002"]
