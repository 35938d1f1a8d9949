"""Helpers for the store tests."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


async def raw_value(engine: AsyncEngine, table: str, column: str) -> object:
    """Read one column of the only row of a table with plain SQL (no ORM, no decryption)."""
    async with engine.connect() as connection:
        result = await connection.execute(text(f"SELECT {column} FROM {table}"))
        return result.scalar_one()
