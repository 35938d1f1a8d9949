"""Run the Alembic migrations shipped inside the package, from code (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from m365pbx.store.db import create_engine, parse_database_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""The Alembic script directory inside the installed package."""

MIGRATION_LOCK_KEY = int.from_bytes(b"m365pbx", "big")
"""PostgreSQL advisory lock taken for the length of a migration transaction."""


def alembic_config(url: str | None = None) -> Config:
    """Return an Alembic configuration pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # configparser interpolation: a literal % in a password must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """Return the newest revision the packaged migrations know."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships a revision
        raise RuntimeError("no migrations found in the package")
    return head


async def upgrade_database(url: str) -> None:
    """Migrate the database at `url` to the newest revision, in one transaction."""
    engine = create_engine(parse_database_url(url), transactional_ddl=True)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade)
    finally:
        await engine.dispose()


async def database_revision(url: str) -> str | None:
    """Return the revision the database at `url` is at, or None when it was never migrated."""
    engine = create_engine(parse_database_url(url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_current_revision)
    finally:
        await engine.dispose()


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Nodes starting together: the second waits here, then finds the schema current.
        # Transaction-scoped, so it cannot outlive the migration on a pooled connection.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
