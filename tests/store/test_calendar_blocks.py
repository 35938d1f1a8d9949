"""Calendar blocks: saved per person, encrypted (subjects), replaced, gone with the person."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from m365pbx.store import MatchStatus, PbxConnectionSpec, PersonRecord, Store, TenantSpec
from tests.store.helpers import NOW, raw_value

MEETING = ("meeting", 1_800_000_000.0, 1_800_001_800.0, "Salary review")
HOLIDAY = ("away", 1_800_100_000.0, 1_800_300_000.0, "")


async def people(store: Store, *keys: str) -> dict[str, int]:
    async with store.transaction() as tx:
        tenant = await tx.tenants.create(TenantSpec("contoso", "contoso-id"))
        pbx = await tx.pbx_connections.create(PbxConnectionSpec("main", "api"))
        await tx.people.replace_for_connection(pbx.id, [
            PersonRecord(MatchStatus.MATCHED, key, pbx_key=key, tenant_id=tenant.id,
                         teams_user_id=f"u-{key}", rule="email") for key in keys])
        return {key: (await tx.people.find_by_pbx_key(pbx.id, key)).id  # type: ignore[union-attr]
                for key in keys}


async def test_blocks_round_trip_are_replaced_and_removed(store: Store) -> None:
    ids = await people(store, "anna", "ben")
    async with store.transaction() as tx:
        await tx.calendar_blocks.save({ids["anna"]: [MEETING, HOLIDAY], ids["ben"]: [HOLIDAY]},
                                      now=NOW)
    async with store.transaction() as tx:
        assert await tx.calendar_blocks.load(ids.values()) == {
            ids["anna"]: [MEETING, HOLIDAY], ids["ben"]: [HOLIDAY]}
        await tx.calendar_blocks.save({ids["anna"]: [HOLIDAY], ids["ben"]: []}, now=NOW)
    async with store.transaction() as tx:
        assert await tx.calendar_blocks.load(ids.values()) == {ids["anna"]: [HOLIDAY]}
        # A person who leaves the directory takes their blocks along.
        await tx.people.replace_for_connection(
            (await tx.pbx_connections.find("main")).id,  # type: ignore[union-attr]
            [PersonRecord(MatchStatus.UNMATCHED, "ben", pbx_key="ben", reason="gone")])
    async with store.transaction() as tx:
        assert await tx.calendar_blocks.load(ids.values()) == {}


async def test_subjects_are_stored_encrypted(store: Store, engine: AsyncEngine) -> None:
    ids = await people(store, "anna")
    async with store.transaction() as tx:
        await tx.calendar_blocks.save({ids["anna"]: [MEETING]}, now=NOW)
    stored = await raw_value(engine, "calendar_blocks", "blocks_encrypted")
    assert isinstance(stored, str) and "Salary" not in stored
    async with store.transaction() as tx:
        assert await tx.rotate_secrets() == 1  # key rotation covers them too
    async with store.transaction() as tx:
        assert await tx.calendar_blocks.load([ids["anna"]]) == {ids["anna"]: [MEETING]}
