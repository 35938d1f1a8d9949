"""Engine factory: SQLite (WAL) by default, PostgreSQL the same way; URL helpers."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

from m365pbx.store.errors import DatabaseUrlError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/m365pbx.db"
"""The embedded database, relative to the working directory."""

SQLITE_BUSY_TIMEOUT_MS = 5000
"""How long a SQLite writer waits for another writer's lock before failing."""

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


def parse_database_url(url: str | URL) -> URL:
    """Parse a database URL and pick the async driver (`sqlite:`, `postgresql:` accepted too)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseUrlError(
            "cannot parse the database URL; expected sqlite+aiosqlite:///path "
            "or postgresql+asyncpg://user:password@host/database"
        ) from None
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise DatabaseUrlError(
            f"unsupported database {parsed.drivername!r}: use sqlite+aiosqlite or "
            "postgresql+asyncpg"
        )
    return parsed.set(drivername=driver)


def mask_url(url: str | URL) -> str:
    """Return the URL as text with any password replaced by `***`."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable database URL>"


def sqlite_path(url: str | URL) -> Path | None:
    """Return the file of a SQLite URL, or None for PostgreSQL and in-memory SQLite."""
    parsed = parse_database_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def ensure_sqlite_directory(url: str | URL) -> None:
    """Create the directory of a SQLite database file if it is missing."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str | URL, *, transactional_ddl: bool = False, **kwargs: Any) -> AsyncEngine:
    """Return an async engine; SQLite connections get WAL, foreign keys and a busy timeout.

    `transactional_ddl=True` (for migrations) makes SQLite run DDL inside the transaction
    and take the write lock when the transaction begins.
    """
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        return _create_async_engine(parsed, **kwargs)
    engine = _create_async_engine(parsed, **kwargs)
    event.listen(engine.sync_engine, "connect", _configure_sqlite_connection)
    if transactional_ddl:
        event.listen(engine.sync_engine, "connect", _disable_driver_begin)
        event.listen(engine.sync_engine, "begin", _emit_begin)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return the session factory used by the store (objects stay readable after commit)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
        # WAL lets readers run while one writer writes; NORMAL sync is safe with WAL.
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _use_wal(cursor: Any) -> None:
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() == "wal":
        return  # WAL is stored in the file: only a new database needs switching
    for attempt in range(_WAL_ATTEMPTS):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.fetchall()
            return
        except sqlite3.OperationalError as exc:
            # Two first connections to a new file: SQLite answers "database is locked" at
            # once, without the busy handler. Rare and short, so a blocking sleep is fine.
            if "locked" not in str(exc) or attempt == _WAL_ATTEMPTS - 1:
                raise
            time.sleep(0.01 * (attempt + 1))


_WAL_ATTEMPTS = 20


def _disable_driver_begin(dbapi_connection: Any, _record: Any) -> None:
    # Python's sqlite3 (legacy transaction control) does not BEGIN before DDL, so a failed
    # migration would leave half a schema; SQLAlchemy docs, "sqlite_transactions".
    dbapi_connection.isolation_level = None


def _emit_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front: a second migrating process waits (busy
    # timeout) and then finds the schema current, instead of failing halfway.
    connection.exec_driver_sql("BEGIN IMMEDIATE")
