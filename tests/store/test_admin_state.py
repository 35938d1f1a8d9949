"""What the admin UI keeps in the store: sessions and links (by hash), overlays, pins."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from m365pbx.store import Store
from m365pbx.store.tables import AdminSessionRow
from m365pbx.web.admin_ui.sessions import LINK_LIFETIME, SessionBook
from m365sim.clock import VirtualClock


async def test_a_session_outlives_its_book_and_expires(store: Store) -> None:
    clock = VirtualClock()
    token = await SessionBook(store, clock, lifetime=timedelta(hours=1)).open("alice")
    # Another node, or this one after a restart: a new book over the same store.
    other = SessionBook(store, clock)
    session = await other.find(token)
    assert session is not None and session.name == "alice" and len(session.csrf) > 30
    assert await other.find("forged") is None and await other.find(None) is None
    async with store.transaction() as tx:
        stored = list(await tx.session.scalars(select(AdminSessionRow)))
    assert [r.token_hash for r in stored] != [token] and token not in repr(stored)
    await clock.advance(3601)
    assert await other.find(token) is None
    assert await other.open_sessions() == 0


async def test_signing_out_ends_the_session_on_every_node(store: Store) -> None:
    clock = VirtualClock()
    one, two = SessionBook(store, clock), SessionBook(store, clock)
    token = await one.open("bob")
    assert await two.find(token) is not None
    await two.close(token)
    assert await one.find(token) is None


async def test_a_one_time_link_works_once_and_briefly(store: Store) -> None:
    clock = VirtualClock()
    book = SessionBook(store, clock)
    link = await book.one_time_link("demo")
    assert await book.find(link) is None  # a link is no session
    assert await SessionBook(store, clock).use_link(link) == "demo"
    assert await book.use_link(link) is None
    late = await book.one_time_link("demo")
    await clock.advance(LINK_LIFETIME.total_seconds() + 1)
    assert await book.use_link(late) is None


async def test_expired_sessions_are_deleted_at_the_next_sign_in(store: Store) -> None:
    clock = VirtualClock()
    book = SessionBook(store, clock, lifetime=timedelta(minutes=5))
    for _ in range(5):
        await book.open("alice")
    await clock.advance(301)
    kept = await book.open("alice")
    async with store.transaction() as tx:
        rows = list(await tx.session.scalars(select(AdminSessionRow)))
    assert len(rows) == 1 and await book.find(kept) is not None


async def test_pins_and_exclusions_one_per_key(store: Store) -> None:
    clock = VirtualClock()
    async with store.transaction() as tx:
        await tx.matching_overrides.put("sw", "anna", kind="pin", teams_user="u-1",
                                        now=clock.now(), by="admin alice")
        await tx.matching_overrides.put("sw", "anna", kind="exclude", teams_user=None,
                                        now=clock.now(), by="admin alice")
        await tx.matching_overrides.put("other", "anna", kind="pin", teams_user="u-2",
                                        now=clock.now(), by="admin alice")
        with pytest.raises(ValueError, match="pin names"):
            await tx.matching_overrides.put("sw", "ben", kind="pin", teams_user=None,
                                            now=clock.now(), by="x")
    async with store.transaction() as tx:
        rows = await tx.matching_overrides.list_for("sw")
        assert [(r.key, r.kind, r.teams_user) for r in rows] == [("anna", "exclude", None)]
        removed = await tx.matching_overrides.remove("sw", "anna")
        assert removed is not None and removed.kind == "exclude"
        assert [r.connection for r in await tx.matching_overrides.list_for()] == ["other"]


async def test_a_mapping_overlay_per_connection(store: Store) -> None:
    clock = VirtualClock()
    async with store.transaction() as tx:
        await tx.mapping_overlays.put("sw", {"teams_to_pbx": []}, now=clock.now(), by="a")
        await tx.mapping_overlays.put("sw", {"replace": False}, now=clock.now(), by="b")
    async with store.transaction() as tx:
        row = await tx.mapping_overlays.find("sw")
        assert row is not None and row.document == {"replace": False} and row.updated_by == "b"
        assert await tx.mapping_overlays.remove("sw")
        assert await tx.mapping_overlays.list_all() == []
