"""Small helpers shared by the repositories."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.errors import ConflictError, NotFoundError, StoreError
from m365pbx.store.tables import Base

M = TypeVar("M", bound=Base)


async def get_or_raise(session: AsyncSession, model: type[M], object_id: int, what: str) -> M:
    """Return the row with this primary key or raise NotFoundError naming `what`."""
    row = await session.get(model, object_id)
    if row is None:
        raise NotFoundError(f"{what} {object_id} does not exist")
    return row


def assign(row: Base, name: str, value: Any) -> bool:
    """Set an attribute only when the value differs; return whether it changed."""
    if getattr(row, name) == value:
        return False
    setattr(row, name, value)
    return True


async def flush_or_conflict(session: AsyncSession, message: str) -> None:
    """Flush; turn a uniqueness or reference violation into a ConflictError with `message`."""
    with conflict_as(message):
        await session.flush()


@contextmanager
def conflict_as(message: str) -> Iterator[None]:
    """Turn a uniqueness or reference violation inside the block into a ConflictError."""
    try:
        yield
    except IntegrityError as exc:
        # The driver's text may quote column values; secrets are only ever ciphertext here.
        raise ConflictError(f"{message} ({type(exc.orig).__name__})") from None


def dialect_insert(session: AsyncSession, model: type[Base]) -> Any:
    """Return an INSERT with ON CONFLICT support for the session's database."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(model)
    if name == "sqlite":
        return sqlite.insert(model)
    # Only SQLite and PostgreSQL are supported databases (design.md, "Storage").
    raise StoreError(f"database {name!r} is not supported: use SQLite or PostgreSQL")
