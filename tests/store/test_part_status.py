"""Part statuses: recorded per node, replaced on change, forgotten; migration 0005 keeps rows."""

from __future__ import annotations

from datetime import timedelta

from alembic import command
from sqlalchemy import inspect

from m365pbx.core.status import PartState, PartStatus
from m365pbx.store import (
    ServiceAccountSpec,
    SignInMethod,
    Store,
    TenantSpec,
    create_engine,
    upgrade_database,
)
from m365pbx.store.migrate import alembic_config
from m365pbx.store.secrets import SecretBox, generate_key
from tests.store.helpers import NOW

SIGN_IN = PartStatus("tenant/contoso/sign_in", "sign_in", PartState.BAD_CREDENTIALS, NOW,
                     "tenant contoso: invalid client secret (AADSTS7000215)",
                     "Put the secret's value, not its id, in the configuration")
PBX = PartStatus("pbx/sip", "pbx_connection", PartState.OK, NOW, counters={"refused": 2})


async def test_saved_statuses_read_back_per_node(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.part_status.save("node-a", [SIGN_IN, PBX], now=NOW)
        await tx.part_status.save("node-b", [PBX], now=NOW)
    async with store.transaction() as tx:
        found = await tx.part_status.all()
    assert [(s.node, s.part) for s in found] == [
        ("node-a", "pbx/sip"), ("node-a", "tenant/contoso/sign_in"), ("node-b", "pbx/sip")]
    sign_in = found[1]
    assert (sign_in.state, sign_in.since, sign_in.error, sign_in.fix, sign_in.written_at) == (
        PartState.BAD_CREDENTIALS, NOW, SIGN_IN.error, SIGN_IN.fix, NOW)
    assert found[0].counters == {"refused": 2}


async def test_a_change_replaces_the_row_and_gone_parts_are_forgotten(store: Store) -> None:
    later = NOW + timedelta(minutes=5)
    async with store.transaction() as tx:
        await tx.part_status.save("node-a", [SIGN_IN, PBX], now=NOW)
    fixed = PartStatus(SIGN_IN.part, "sign_in", PartState.OK, later)
    async with store.transaction() as tx:
        await tx.part_status.save("node-a", [fixed], now=later)
        await tx.part_status.forget("node-a", ["pbx/sip"])
    async with store.transaction() as tx:
        found = await tx.part_status.all()
    assert [(s.part, s.state, s.since, s.error, s.fix, s.written_at) for s in found] == [
        (SIGN_IN.part, PartState.OK, later, None, None, later)]


async def test_migration_0005_keeps_accounts_and_subscriptions(empty_database_url: str) -> None:
    # Dropping the old state columns must not rebuild (and so cascade-delete) any table.
    await upgrade_database(empty_database_url)
    store = Store(create_engine(empty_database_url), SecretBox([generate_key()], source="t"))
    try:
        async with store.transaction() as tx:
            tenant = await tx.tenants.create(TenantSpec("contoso", "contoso-id"))
            account = await tx.service_accounts.create(
                ServiceAccountSpec("svc@contoso.com", "contoso", SignInMethod.DEVICE_CODE))
            await tx.subscriptions.save("sub-1", tenant_id=tenant.id,
                                        service_account_id=account.id, resource="/x",
                                        expires_at=NOW, client_state="c", now=NOW)
        engine = create_engine(empty_database_url, transactional_ddl=True)
        try:
            async with engine.begin() as connection:

                def downgrade(sync_connection: object) -> None:
                    config = alembic_config()
                    config.attributes["connection"] = sync_connection
                    command.downgrade(config, "0004")

                await connection.run_sync(downgrade)
            async with engine.connect() as connection:
                columns = await connection.run_sync(
                    lambda c: {col["name"] for col in inspect(c).get_columns("subscriptions")})
                tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
            assert "state" in columns and "part_status" not in tables
        finally:
            await engine.dispose()
        await upgrade_database(empty_database_url)
        async with store.transaction() as tx:
            assert await tx.subscriptions.get("sub-1") is not None
            assert await tx.service_accounts.find("svc@contoso.com") is not None
            await tx.part_status.save("node-a", [PBX], now=NOW)
    finally:
        await store.close()


async def test_keep_only_deletes_what_an_earlier_run_of_the_node_left(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.part_status.save("node-a", [SIGN_IN, PBX], now=NOW)
        await tx.part_status.save("node-b", [PBX], now=NOW)
    async with store.transaction() as tx:
        assert await tx.part_status.keep_only("node-a", [SIGN_IN.part]) == 1
    async with store.transaction() as tx:
        found = await tx.part_status.all()
    assert [(s.node, s.part) for s in found] == [
        ("node-a", "tenant/contoso/sign_in"), ("node-b", "pbx/sip")]
