"""The shipped migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, MetaData, String, Table, inspect, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from m365pbx.store import create_engine, database_revision, head_revision, upgrade_database
from m365pbx.store.migrate import MIGRATIONS_DIR
from m365pbx.store.tables import Base

EXPECTED_TABLES = {
    "admin_sessions",
    "admin_users",
    "alembic_version",
    "api_clients",
    "api_handoffs",
    "api_shown",
    "api_users",
    "audit_events",
    "calendar_blocks",
    "contact_books",
    "credentials",
    "last_presence",
    "leases",
    "mailbox_subscriptions",
    "webhook_handoffs",
    "mapping_overlays",
    "matching_overrides",
    "nodes",
    "part_status",
    "pbx_connections",
    "people",
    "presence_sessions",
    "service_accounts",
    "sip_publications",
    "subscriptions",
    "tenants",
}


def _diff(connection: Connection, metadata: MetaData = Base.metadata) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_matches_the_models(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        assert await connection.run_sync(_diff) == []
        tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert tables == EXPECTED_TABLES


async def test_comparison_notices_a_difference(engine: AsyncEngine) -> None:
    # Guards the test above against passing vacuously.
    changed = MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    Table("extra", changed)
    changed.tables["tenants"].c.display_name.type = String(10)  # types are shared: replace
    async with engine.connect() as connection:
        diff = await connection.run_sync(lambda c: _diff(c, changed))
    kinds = {entry[0] if isinstance(entry, tuple) else entry[0][0] for entry in diff}  # type: ignore[index]
    assert {"add_table", "modify_type"} <= kinds


async def test_database_is_at_head_and_upgrade_again_is_a_no_op(database_url: str) -> None:
    assert head_revision() == "0015"
    assert await database_revision(database_url) == "0015"
    await upgrade_database(database_url)
    assert await database_revision(database_url) == "0015"


async def test_upgrade_from_empty_database(empty_database_url: str) -> None:
    assert await database_revision(empty_database_url) is None
    await upgrade_database(empty_database_url)
    assert await database_revision(empty_database_url) == head_revision()
    engine = create_engine(empty_database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_failed_sqlite_migration_leaves_nothing_behind(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'clash.db'}"
    engine = create_engine(url)
    async with engine.begin() as connection:
        # A table in the way makes the migration fail halfway through.
        await connection.execute(text("CREATE TABLE people (id INTEGER)"))
    with pytest.raises(OperationalError):
        await upgrade_database(url)
    async with engine.connect() as connection:
        tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    assert tables == {"people"}  # tenants etc. were rolled back with the failed revision


async def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'pragmas.db'}")
    try:
        async with engine.connect() as connection:
            journal = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
            foreign_keys = (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar()
            timeout = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar()
    finally:
        await engine.dispose()
    assert (journal, foreign_keys) == ("wal", 1)
    assert timeout and timeout >= 1000


def test_migration_files_ship_inside_the_package() -> None:
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert (MIGRATIONS_DIR / "versions" / "0001_initial.py").is_file()


async def test_sqlite_never_reuses_ids(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ids.db'}"
    await upgrade_database(url)
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
                    " AND name != 'alembic_version' AND name NOT LIKE 'sqlite_%'"
                )
            )
            schema = {str(row[0]): str(row[1]) for row in rows.all()}
    finally:
        await engine.dispose()
    assert len(schema) == len(EXPECTED_TABLES) - 1
    assert all("AUTOINCREMENT" in sql for sql in schema.values())


async def test_concurrent_upgrades_do_not_collide(empty_database_url: str) -> None:
    # Two nodes (or a node and an operator) migrating the same empty database at once.
    await asyncio.gather(*(upgrade_database(empty_database_url) for _ in range(3)))
    assert await database_revision(empty_database_url) == head_revision()
