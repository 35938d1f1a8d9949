"""People: replace-all per PBX connection, never wiped by an empty fetch."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from m365pbx.store import (
    ConflictError,
    EmptyDirectoryError,
    MatchStatus,
    NotFoundError,
    PbxConnectionSpec,
    PersonRecord,
    ReplaceReport,
    Store,
    TenantSpec,
)
from tests.store.helpers import NOW


async def setup(store: Store) -> tuple[int, int]:
    async with store.transaction() as tx:
        tenant = await tx.tenants.create(TenantSpec("contoso", "contoso-id"))
        pbx = await tx.pbx_connections.create(PbxConnectionSpec("main", "sip"))
        return tenant.id, pbx.id


def directory(tenant: int) -> list[PersonRecord]:
    return [
        PersonRecord(
            MatchStatus.MATCHED,
            "Alice",
            pbx_key="alice",
            tenant_id=tenant,
            teams_user_id="u-alice",
            rule="email",
        ),
        PersonRecord(
            MatchStatus.UNMATCHED, "Bob", pbx_key="bob", reason="no Teams user with this e-mail"
        ),
        PersonRecord(
            MatchStatus.AMBIGUOUS,
            "Carol",
            tenant_id=tenant,
            teams_user_id="u-carol",
            reason="two PBX users",
            candidates=[{"pbx_key": "carol1"}, {"pbx_key": "carol2"}],
        ),
    ]


async def test_replace_stores_the_directory(store: Store) -> None:
    tenant, pbx = await setup(store)
    async with store.transaction() as tx:
        report = await tx.people.replace_for_connection(pbx, directory(tenant))
    assert report == ReplaceReport(added=3, updated=0, unchanged=0, removed=0)
    async with store.transaction() as tx:
        people = await tx.people.list_for_connection(pbx)
        assert [p.display_name for p in people] == ["Alice", "Bob", "Carol"]
        carol = people[2]
        assert carol.candidates == [{"pbx_key": "carol1"}, {"pbx_key": "carol2"}]
        assert [
            p.display_name
            for p in await tx.people.list_for_connection(pbx, status=MatchStatus.UNMATCHED)
        ] == ["Bob"]
        assert (await tx.people.find_by_pbx_key(pbx, "alice")).teams_user_id == "u-alice"  # type: ignore[union-attr]
        assert [p.pbx_key for p in await tx.people.find_by_teams_user(tenant, "u-alice")] == [
            "alice"
        ]
        assert await tx.people.count_by_status(pbx) == {
            MatchStatus.MATCHED: 1,
            MatchStatus.UNMATCHED: 1,
            MatchStatus.AMBIGUOUS: 1,
        }


async def test_replace_keeps_ids_of_unchanged_people_and_their_presence(store: Store) -> None:
    tenant, pbx = await setup(store)
    async with store.transaction() as tx:
        await tx.people.replace_for_connection(pbx, directory(tenant))
        alice = await tx.people.find_by_pbx_key(pbx, "alice")
        assert alice is not None
        await tx.presence_sessions.upsert(
            alice.id,
            session_id="app",
            availability="Busy",
            activity="InACall",
            expires_at=NOW,
            now=NOW,
        )
    renamed = directory(tenant)
    renamed[0] = PersonRecord(
        MatchStatus.MATCHED,
        "Alice Smith",
        pbx_key="alice",
        tenant_id=tenant,
        teams_user_id="u-alice",
        rule="email",
    )
    del renamed[1]  # Bob left
    async with store.transaction() as tx:
        report = await tx.people.replace_for_connection(pbx, renamed)
    assert report == ReplaceReport(added=0, updated=1, unchanged=1, removed=1)
    async with store.transaction() as tx:
        again = await tx.people.find_by_pbx_key(pbx, "alice")
        assert again is not None and again.id == alice.id and again.display_name == "Alice Smith"
        assert await tx.presence_sessions.get(alice.id) is not None
        assert await tx.people.find_by_pbx_key(pbx, "bob") is None


async def test_pbx_key_moving_to_another_teams_user_is_a_new_person(store: Store) -> None:
    tenant, pbx = await setup(store)
    async with store.transaction() as tx:
        await tx.people.replace_for_connection(pbx, directory(tenant))
        old = await tx.people.find_by_pbx_key(pbx, "alice")
        assert old is not None
        await tx.presence_sessions.upsert(
            old.id,
            session_id="app",
            availability="Busy",
            activity="InACall",
            expires_at=NOW,
            now=NOW,
        )
    moved = [
        PersonRecord(
            MatchStatus.MATCHED,
            "Alice",
            pbx_key="alice",
            tenant_id=tenant,
            teams_user_id="u-someone-else",
        )
    ]
    async with store.transaction() as tx:
        report = await tx.people.replace_for_connection(pbx, moved)
    assert (report.added, report.removed) == (1, 3)
    async with store.transaction() as tx:
        new = await tx.people.find_by_pbx_key(pbx, "alice")
        assert new is not None and new.id != old.id
        # The old person's session went with it (ON DELETE CASCADE).
        assert await tx.presence_sessions.list_all() == []


async def test_replace_refuses_an_empty_list(store: Store) -> None:
    tenant, pbx = await setup(store)
    async with store.transaction() as tx:
        await tx.people.replace_for_connection(pbx, directory(tenant))
    with pytest.raises(EmptyDirectoryError, match="allow_empty=True"):
        async with store.transaction() as tx:
            await tx.people.replace_for_connection(pbx, [])
    async with store.transaction() as tx:
        assert len(await tx.people.list_for_connection(pbx)) == 3
        report = await tx.people.replace_for_connection(pbx, [], allow_empty=True)
    assert report.removed == 3
    async with store.transaction() as tx:
        assert await tx.people.list_for_connection(pbx) == []


async def test_failed_replace_keeps_the_old_directory(store: Store) -> None:
    tenant, pbx = await setup(store)
    async with store.transaction() as tx:
        await tx.people.replace_for_connection(pbx, directory(tenant))
    broken = [
        PersonRecord(
            MatchStatus.MATCHED, "Zed", pbx_key="zed", tenant_id=tenant + 999, teams_user_id="u-zed"
        ),
    ]
    # The old rows are deleted before the insert fails on the unknown tenant: rolled back.
    with pytest.raises(ConflictError, match="cannot store the people"):
        async with store.transaction() as tx:
            await tx.people.replace_for_connection(pbx, broken)
    async with store.transaction() as tx:
        assert [p.pbx_key for p in await tx.people.list_for_connection(pbx)] == [
            "alice",
            "bob",
            None,
        ]


async def test_replace_refuses_duplicates_before_touching_anything(store: Store) -> None:
    tenant, pbx = await setup(store)
    twice = [
        PersonRecord(MatchStatus.UNMATCHED, "A", pbx_key="same"),
        PersonRecord(
            MatchStatus.MATCHED, "B", pbx_key="same", tenant_id=tenant, teams_user_id="u-b"
        ),
    ]
    with pytest.raises(ConflictError, match="more than once: same"):
        async with store.transaction() as tx:
            await tx.people.replace_for_connection(pbx, twice)


async def test_replace_for_unknown_connection(store: Store) -> None:
    with pytest.raises(NotFoundError, match="PBX connection"):
        async with store.transaction() as tx:
            await tx.people.replace_for_connection(12345, directory(1))


def test_person_record_needs_an_identity() -> None:
    with pytest.raises(ValueError, match="PBX key, a Teams user id"):
        PersonRecord(MatchStatus.UNMATCHED, "nobody")
    with pytest.raises(ValueError, match="tenant id"):
        PersonRecord(MatchStatus.UNMATCHED, "x", teams_user_id="u-x")


async def test_database_enforces_one_person_per_pbx_key(store: Store) -> None:
    _, pbx = await setup(store)
    with pytest.raises(IntegrityError):
        async with store.transaction() as tx:
            for _ in range(2):
                await tx.session.execute(
                    text(
                        "INSERT INTO people (pbx_connection_id, pbx_key, display_name, status,"
                        " candidates, updated_at) VALUES (:pbx, 'dup', '', 'matched', '[]',"
                        " CURRENT_TIMESTAMP)"
                    ),
                    {"pbx": pbx},
                )


async def test_deleting_a_connection_removes_its_people_and_their_state(store: Store) -> None:
    tenant, pbx = await setup(store)
    async with store.transaction() as tx:
        await tx.people.replace_for_connection(pbx, directory(tenant))
        alice = await tx.people.find_by_pbx_key(pbx, "alice")
        assert alice is not None
        await tx.presence_sessions.upsert(
            alice.id,
            session_id="app",
            availability="Away",
            activity="Away",
            expires_at=NOW,
            now=NOW,
        )
    async with store.transaction() as tx:
        await tx.pbx_connections.delete(pbx)
    async with store.transaction() as tx:
        assert await tx.people.list_for_connection(pbx) == []
        assert await tx.presence_sessions.list_all() == []


def many(tenant: int, count: int, name: str = "Person") -> list[PersonRecord]:
    return [
        PersonRecord(
            MatchStatus.MATCHED,
            f"{name} {n}",
            pbx_key=f"p{n}",
            tenant_id=tenant,
            teams_user_id=f"u-{n}",
            rule="cn=displayName",
        )
        for n in range(count)
    ]


async def test_a_large_directory_is_written_in_chunks_and_keeps_ids(store: Store) -> None:
    tenant, pbx = await setup(store)
    first = many(tenant, 1234)  # more than two statements' worth of rows
    async with store.transaction() as tx:
        report = await tx.people.replace_for_connection(pbx, first)
    assert report == ReplaceReport(added=1234, updated=0, unchanged=0, removed=0)
    async with store.transaction() as tx:
        before = {p.pbx_key: p.id for p in await tx.people.summaries_for_connection(pbx)}
    renamed = {f"p{n}" for n in range(0, 1234, 3)}
    kept = [
        PersonRecord(
            r.status,
            "Renamed" if r.pbx_key in renamed else r.display_name,
            pbx_key=r.pbx_key,
            tenant_id=r.tenant_id,
            teams_user_id=r.teams_user_id,
            rule=r.rule,
        )
        for n, r in enumerate(first)
        if n % 5
    ]
    arrivals = [
        PersonRecord(MatchStatus.UNMATCHED, f"new {n}", pbx_key=f"new{n}", reason="no Teams user")
        for n in range(600)
    ]
    async with store.transaction() as tx:
        report = await tx.people.replace_for_connection(pbx, kept + arrivals)
    renamed_kept = sum(1 for r in kept if r.pbx_key in renamed)
    assert report == ReplaceReport(
        added=600, updated=renamed_kept, unchanged=len(kept) - renamed_kept, removed=247
    )
    async with store.transaction() as tx:
        matched = await tx.people.summaries_for_connection(pbx, status=MatchStatus.MATCHED)
        assert [p.id for p in matched] == sorted(p.id for p in matched)
        assert {p.pbx_key: p.id for p in matched} == {r.pbx_key: before[r.pbx_key] for r in kept}
        assert {p.display_name for p in matched if p.pbx_key in renamed} == {"Renamed"}
        assert len(await tx.people.summaries_for_connection(pbx)) == len(kept) + 600


async def test_rows_already_loaded_in_the_transaction_show_the_replace(store: Store) -> None:
    tenant, pbx = await setup(store)
    async with store.transaction() as tx:
        await tx.people.replace_for_connection(pbx, directory(tenant))
    async with store.transaction() as tx:
        alice, bob, _ = await tx.people.list_for_connection(pbx)
        renamed = directory(tenant)
        renamed[0] = PersonRecord(
            MatchStatus.MATCHED,
            "Alice Smith",
            pbx_key="alice",
            tenant_id=tenant,
            teams_user_id="u-alice",
            rule="email",
        )
        del renamed[1]
        await tx.people.replace_for_connection(pbx, renamed)
        assert alice.display_name == "Alice Smith"
        assert (await tx.people.get(alice.id)).display_name == "Alice Smith"
        assert await tx.people.find_by_pbx_key(pbx, "bob") is None
        with pytest.raises(NotFoundError):
            await tx.people.get(bob.id)
