"""Presence sessions and last presence per side, with stale updates refused."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from m365pbx.store import (
    MatchStatus,
    NotFoundError,
    PbxConnectionSpec,
    PersonRecord,
    Side,
    Store,
)
from tests.store.helpers import NOW

LATER = NOW + timedelta(seconds=30)


async def person(store: Store, key: str = "alice") -> int:
    async with store.transaction() as tx:
        pbx = await tx.pbx_connections.find("main")
        if pbx is None:
            pbx = await tx.pbx_connections.create(PbxConnectionSpec("main", "sip"))
        known = [p.pbx_key for p in await tx.people.list_for_connection(pbx.id) if p.pbx_key]
        records = [PersonRecord(MatchStatus.UNMATCHED, k, pbx_key=k) for k in {*known, key}]
        await tx.people.replace_for_connection(pbx.id, records)
        found = await tx.people.find_by_pbx_key(pbx.id, key)
        assert found is not None
        return found.id


async def test_presence_session_upsert_get_list_delete(store: Store) -> None:
    alice, bob = await person(store, "alice"), await person(store, "bob")
    async with store.transaction() as tx:
        await tx.presence_sessions.upsert(
            alice,
            session_id="app-id",
            availability="Busy",
            activity="InACall",
            expires_at=NOW + timedelta(minutes=5),
            now=NOW,
        )
        await tx.presence_sessions.upsert(
            bob,
            session_id="app-id",
            availability="Away",
            activity="Away",
            expires_at=NOW + timedelta(minutes=60),
            now=NOW,
        )
    async with store.transaction() as tx:
        refreshed = await tx.presence_sessions.upsert(
            alice,
            session_id="app-id",
            availability="DoNotDisturb",
            activity="Presenting",
            expires_at=NOW + timedelta(minutes=10),
            now=LATER,
        )
        assert (refreshed.availability, refreshed.last_written_at) == ("DoNotDisturb", LATER)
    async with store.transaction() as tx:
        session = await tx.presence_sessions.get(alice)
        assert session is not None and session.activity == "Presenting"
        assert len(await tx.presence_sessions.list_all()) == 2
        due = await tx.presence_sessions.list_all(expiring_before=NOW + timedelta(minutes=30))
        assert [s.person_id for s in due] == [alice]
        assert await tx.presence_sessions.delete(alice) is True
        assert await tx.presence_sessions.delete(alice) is False
        assert await tx.presence_sessions.get(alice) is None


async def test_presence_session_for_unknown_person(store: Store) -> None:
    with pytest.raises(NotFoundError, match="person 424242"):
        async with store.transaction() as tx:
            await tx.presence_sessions.upsert(
                424242,
                session_id="s",
                availability="Busy",
                activity="Busy",
                expires_at=NOW,
                now=NOW,
            )


async def test_last_presence_by_sequence_refuses_older(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await person(store)
    async with store.transaction() as tx:
        assert await tx.last_presence.record_seen(
            alice, Side.PBX, {"presence": "busy"}, at=NOW, sequence=5, now=NOW
        )
        # An older sequence is refused even with a later timestamp.
        with caplog.at_level(logging.WARNING, logger="m365pbx.store"):
            assert not await tx.last_presence.record_seen(
                alice, Side.PBX, {"presence": "online"}, at=LATER, sequence=4, now=LATER
            )
        assert "stale pbx presence for person" in caplog.text
        assert await tx.last_presence.record_seen(
            alice, Side.PBX, {"presence": "dnd"}, at=NOW, sequence=6, now=LATER
        )
    async with store.transaction() as tx:
        row = await tx.last_presence.get(alice, Side.PBX)
        assert row is not None
        assert (row.seen_values, row.seen_sequence, row.seen_at) == ({"presence": "dnd"}, 6, NOW)


async def test_last_presence_by_timestamp_refuses_older(store: Store) -> None:
    alice = await person(store)
    async with store.transaction() as tx:
        assert await tx.last_presence.record_seen(
            alice, Side.TEAMS, {"availability": "Busy", "activity": "InACall"}, at=LATER, now=LATER
        )
        assert not await tx.last_presence.record_seen(
            alice,
            Side.TEAMS,
            {"availability": "Available", "activity": "Available"},
            at=NOW,
            now=LATER,
        )
        # The same instant again is not older: accepted (a repeat is harmless).
        assert await tx.last_presence.record_seen(
            alice, Side.TEAMS, {"availability": "Away", "activity": "Away"}, at=LATER, now=LATER
        )
    async with store.transaction() as tx:
        row = await tx.last_presence.get(alice, Side.TEAMS)
        assert row is not None and row.seen_values == {"availability": "Away", "activity": "Away"}
        assert await tx.last_presence.get(alice, Side.PBX) is None


async def test_written_values_are_kept_per_side_beside_seen_values(store: Store) -> None:
    alice = await person(store)
    async with store.transaction() as tx:
        await tx.last_presence.record_written(alice, Side.PBX, {"presence": "busy"}, now=NOW)
        await tx.last_presence.record_seen(
            alice, Side.PBX, {"presence": "busy"}, at=LATER, sequence=1, now=LATER
        )
        await tx.last_presence.record_written(
            alice, Side.TEAMS, {"availability": "Busy"}, now=LATER
        )
    async with store.transaction() as tx:
        pbx = await tx.last_presence.get(alice, Side.PBX)
        assert pbx is not None
        assert (pbx.written_values, pbx.written_at) == ({"presence": "busy"}, NOW)
        assert (pbx.seen_values, pbx.seen_sequence) == ({"presence": "busy"}, 1)
        both = await tx.last_presence.list_for_person(alice)
        assert [(r.side, r.seen_values) for r in both] == [
            (Side.PBX, {"presence": "busy"}),
            (Side.TEAMS, None),
        ]


async def test_last_presence_for_unknown_person(store: Store) -> None:
    with pytest.raises(NotFoundError, match="person 424242"):
        async with store.transaction() as tx:
            await tx.last_presence.record_seen(424242, Side.PBX, {}, at=NOW, now=NOW)


async def test_many_people_are_recorded_in_one_call_older_values_still_refused(
    store: Store,
) -> None:
    alice, bob = await person(store, "alice"), await person(store, "bob")
    async with store.transaction() as tx:
        await tx.last_presence.record_seen(alice, Side.TEAMS, {"availability": "Busy"},
                                           at=LATER, now=LATER)
    seen = [{"person_id": pid, "side": Side.TEAMS, "seen_values": {"availability": value},
             "seen_at": NOW, "updated_at": LATER}
            for pid, value in ((alice, "Away"), (bob, "Available"))]
    written = [{"person_id": bob, "side": Side.TEAMS, "written_values": {"presence": "busy"},
                "written_at": LATER, "updated_at": LATER}]
    async with store.transaction() as tx:
        await tx.last_presence.record_many(seen, written)
    async with store.transaction() as tx:
        kept = await tx.last_presence.get(alice, Side.TEAMS)
        assert kept is not None and kept.seen_values == {"availability": "Busy"}  # newer kept
        row = await tx.last_presence.get(bob, Side.TEAMS)
        assert row is not None and row.seen_values == {"availability": "Available"}
        assert row.written_values == {"presence": "busy"}
    with pytest.raises(NotFoundError):
        async with store.transaction() as tx:
            await tx.last_presence.record_many([{**seen[0], "person_id": 999_999}], [])
