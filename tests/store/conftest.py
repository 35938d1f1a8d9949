"""Store fixtures: every store test runs on SQLite and on PostgreSQL.

PostgreSQL is expected on 127.0.0.1:5432 with trust auth for user `postgres`. One
throwaway database per test run is created and dropped at the end. Without a server
the PostgreSQL variants are skipped, except under CI (the `CI` variable), where they fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from m365pbx.store import SecretBox, Store, create_engine, generate_key, upgrade_database
from m365pbx.store.tables import Base

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"


async def _admin() -> asyncpg.Connection:
    return await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres", timeout=5
    )


async def create_pg_database(name: str) -> None:
    """Create an empty PostgreSQL database (the name must be a safe identifier)."""
    connection = await _admin()
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_pg_database(name: str) -> None:
    """Drop a PostgreSQL database even if connections are left over."""
    connection = await _admin()
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def pg_url(name: str) -> str:
    """Return the SQLAlchemy URL of a test database."""
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def _postgres_problem() -> str | None:
    async def probe() -> None:
        connection = await _admin()
        await connection.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def postgres_available() -> None:
    """Skip (or under CI, fail) when no PostgreSQL server answers on 127.0.0.1:5432."""
    problem = _postgres_problem()
    if problem is None:
        return
    message = f"PostgreSQL on {PG_HOST}:{PG_PORT} is not reachable ({problem})"
    if "CI" in os.environ:
        pytest.fail(f"{message}; CI must prove the store works on PostgreSQL", pytrace=False)
    pytest.skip(f"{message}: skipping the PostgreSQL variants of the store tests")


@pytest.fixture(scope="session")
def new_pg_database(postgres_available: None) -> Iterator[Callable[[], str]]:
    """Yield a factory of empty throwaway PostgreSQL databases; all are dropped at the end."""
    created: list[str] = []

    def make() -> str:
        name = f"m365pbx_test_{secrets.token_hex(6)}"
        asyncio.run(create_pg_database(name))
        created.append(name)
        return pg_url(name)

    yield make

    async def drop_all() -> None:
        await asyncio.gather(*(drop_pg_database(name) for name in created))

    asyncio.run(drop_all())


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Return the URL of a database migrated from empty, once per backend and test run."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('store') / 'store.db'}"
    else:
        url = str(request.getfixturevalue("new_pg_database")())
    asyncio.run(upgrade_database(url))
    return url


@pytest.fixture
def empty_database_url(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> str:
    """Return the URL of a new, empty database on the same backend as `database_url`."""
    if database_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    return str(request.getfixturevalue("new_pg_database")())


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """Yield an engine on the migrated database; every row is deleted after the test."""
    engine = create_engine(database_url)
    yield engine
    async with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(table.delete())
    await engine.dispose()


@pytest.fixture
def secret_key() -> str:
    """Return a fresh Fernet key."""
    return generate_key()


@pytest.fixture
def box(secret_key: str) -> SecretBox:
    """Return a secret box with that key."""
    return SecretBox([secret_key], source="test key")


@pytest.fixture
def store(engine: AsyncEngine, box: SecretBox) -> Store:
    """Return a store on the test database."""
    return Store(engine, box)
