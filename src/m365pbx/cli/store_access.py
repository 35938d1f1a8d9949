"""Opening the configured store from a CLI command, with errors a person can act on."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError

from m365pbx.cli.app import EXIT_FAILED, fail
from m365pbx.config import Settings
from m365pbx.errors import UserInputError
from m365pbx.store import (
    Repositories,
    SecretBox,
    Store,
    StoreError,
    database_revision,
    ensure_sqlite_directory,
    generate_key,
    head_revision,
    load_secret_box,
    mask_url,
    parse_database_url,
    upgrade_database,
)
from m365pbx.store.db import sqlite_path
from m365pbx.store.secrets import ENV_VAR

T = TypeVar("T")


def in_store(
    settings: Settings,
    work: Callable[[Repositories], Awaitable[T]],
    *,
    create: bool = True,
    box: SecretBox | None = None,
) -> T:
    """Migrate the configured database, run `work` in one transaction, and close it.

    With `create=False` (read-only commands) nothing is created: no database, no migration,
    no key file; a missing database or one at an older revision is refused with what to run
    instead. `box` replaces the configured keys (key rotation).
    """
    url = settings.database.url
    shown = mask_url(parse_database_url(url))

    async def run() -> T:
        if not create:
            await _check_readable(url, shown)
            keys = box or _existing_keys(Path(settings.secrets.key_file))
        else:
            keys = box or load_secret_box(key_file=settings.secrets.key_file)
            ensure_sqlite_directory(parse_database_url(url))
            await upgrade_database(url)
        store = Store.open(url, keys)
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


async def _check_readable(url: str, shown: str) -> None:
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise fail(f"there is no database at {path.resolve()} yet ({shown}); `m365pbx serve` "
                   "or `m365pbx db upgrade` creates it", EXIT_FAILED)
    revision, head = await database_revision(url), head_revision()
    if revision != head:
        raise fail(f"the database at {shown} is at revision {revision or 'none (empty)'}, this "
                   f"m365pbx needs {head}: run `m365pbx db upgrade` first", EXIT_FAILED)


def _existing_keys(key_file: Path) -> SecretBox:
    """The configured keys, without making a key file when there is none."""
    if ENV_VAR in os.environ or key_file.exists():
        return load_secret_box(key_file=key_file)
    # Nothing encrypted can be read without the key; a throw-away one says so if asked to.
    return SecretBox([generate_key()], source=f"key file {key_file} (missing)")
