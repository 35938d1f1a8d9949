"""Database URLs and the store object."""

from __future__ import annotations

from pathlib import Path

import pytest

from m365pbx.store import (
    DatabaseUrlError,
    SecretBox,
    Store,
    TenantSpec,
    generate_key,
    mask_url,
    parse_database_url,
    upgrade_database,
)
from m365pbx.store.db import sqlite_path


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite"),
        ("postgresql://u@h/d", "postgresql+asyncpg"),
        ("postgres://u@h/d", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg"),
    ],
)
def test_urls_get_the_async_driver(given: str, driver: str) -> None:
    assert parse_database_url(given).drivername == driver


@pytest.mark.parametrize("bad", ["mysql://u@h/d", "not a url", "postgresql+psycopg://u@h/d"])
def test_unsupported_or_malformed_url(bad: str) -> None:
    with pytest.raises(DatabaseUrlError):
        parse_database_url(bad)


def test_mask_url_hides_the_password() -> None:
    masked = mask_url("postgresql+asyncpg://app:pa%40ss@db.example:5432/m365pbx")
    assert masked == "postgresql+asyncpg://app:***@db.example:5432/m365pbx"
    assert "pa" not in masked.split("@")[0].split(":")[-1]


def test_sqlite_path() -> None:
    assert sqlite_path("sqlite+aiosqlite:///var/m365pbx.db") == Path("var/m365pbx.db")
    assert sqlite_path("sqlite+aiosqlite://") is None
    assert sqlite_path("postgresql://u@h/d") is None


async def test_store_open_commit_and_rollback(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    await upgrade_database(url)
    store = Store.open(url, SecretBox([generate_key()]))
    try:
        assert "store.db" in repr(store)
        async with store.transaction() as tx:
            await tx.tenants.create(TenantSpec("kept", "kept-id"))
        with pytest.raises(RuntimeError):
            async with store.transaction() as tx:
                await tx.tenants.create(TenantSpec("dropped", "dropped-id"))
                raise RuntimeError("boom")
        async with store.transaction() as tx:
            assert [t.name for t in await tx.tenants.list_all()] == ["kept"]
    finally:
        await store.close()
