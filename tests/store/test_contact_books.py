"""Contact books: saved per person, encrypted as a whole, replaced, gone with the person."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from m365pbx.store import MatchStatus, PersonRecord, Store, StoredBook
from tests.store.helpers import NOW, raw_value
from tests.store.test_calendar_blocks import people

JUERGEN = "AAMk1\x1fp\x1f1\x1fJürgen Müller\x1fFabrikam\x1f\x1f\x1fbusiness\x1d030 1234567".encode()
BOOK = StoredBook((JUERGEN,), {"folder-1": (1, "https://graph/delta?$deltatoken=abc")}, 1)
EMPTY = StoredBook((), {"folder-1": (1, "https://graph/delta?$deltatoken=def")}, 1)


async def test_books_round_trip_are_replaced_and_removed(store: Store) -> None:
    ids = await people(store, "anna", "ben")
    async with store.transaction() as tx:
        await tx.contact_books.save({ids["anna"]: BOOK, ids["ben"]: BOOK}, now=NOW)
    async with store.transaction() as tx:
        assert await tx.contact_books.load(ids.values()) == {ids["anna"]: BOOK,
                                                             ids["ben"]: BOOK}
        await tx.contact_books.save({ids["anna"]: EMPTY}, now=NOW)
        assert await tx.contact_books.delete([ids["ben"]]) == 1
    async with store.transaction() as tx:
        assert await tx.contact_books.load(ids.values()) == {ids["anna"]: EMPTY}
        await tx.contact_books.save({ids["ben"]: BOOK}, now=NOW)
        # A person who leaves the directory takes their contacts along.
        await tx.people.replace_for_connection(
            (await tx.pbx_connections.find("main")).id,  # type: ignore[union-attr]
            [PersonRecord(MatchStatus.UNMATCHED, "ben", pbx_key="ben", reason="gone")])
    async with store.transaction() as tx:
        assert await tx.contact_books.load(ids.values()) == {}


async def test_books_are_stored_encrypted(store: Store, engine: AsyncEngine) -> None:
    ids = await people(store, "anna")
    async with store.transaction() as tx:
        await tx.contact_books.save({ids["anna"]: BOOK}, now=NOW)
    stored = await raw_value(engine, "contact_books", "book_encrypted")
    assert isinstance(stored, str)
    for plain in ("Müller", "Muller", "Fabrikam", "1234567", "deltatoken"):
        assert plain not in stored
    async with store.transaction() as tx:
        assert await tx.rotate_secrets() == 1  # key rotation covers them too
    async with store.transaction() as tx:
        assert await tx.contact_books.load([ids["anna"]]) == {ids["anna"]: BOOK}
