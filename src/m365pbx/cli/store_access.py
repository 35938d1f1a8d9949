"""Opening the configured store from a CLI command, with errors a person can act on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError

from m365pbx.cli.app import fail
from m365pbx.config import Settings
from m365pbx.errors import UserInputError
from m365pbx.store import (
    Repositories,
    Store,
    StoreError,
    ensure_sqlite_directory,
    load_secret_box,
    mask_url,
    parse_database_url,
    upgrade_database,
)

T = TypeVar("T")
EXIT_FAILED = 1


def in_store(settings: Settings, work: Callable[[Repositories], Awaitable[T]]) -> T:
    """Migrate the configured database, run `work` in one transaction, and close it."""
    url = settings.database.url
    shown = mask_url(parse_database_url(url))

    async def run() -> T:
        box = load_secret_box(key_file=settings.secrets.key_file)
        ensure_sqlite_directory(parse_database_url(url))
        await upgrade_database(url)
        store = Store.open(url, box)
        try:
            async with store.transaction() as tx:
                return await work(tx)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except StoreError as exc:
        raise UserInputError(str(exc)) from None
    except (OSError, SQLAlchemyError) as exc:
        message = f"cannot use the database at {shown}: {type(exc).__name__}"
        raise fail(message, EXIT_FAILED) from None
