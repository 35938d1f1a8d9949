"""One pooled PostgreSQL connection LISTENing on NOTIFY channels (several nodes,
docs/cluster.md): how a node hears at once that another wrote something for it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from m365pbx.store import Store

Listener = tuple[Any, Any]
"""The pooled SQLAlchemy connection and its asyncpg connection."""


async def listen(store: Store, channels: Mapping[str, Callable[[], None]],
                 old: Listener | None) -> Listener | None:
    """Close `old`, then LISTEN on `channels` (each calls its function on a NOTIFY) on a
    new pooled connection; None on SQLite, which has no NOTIFY. Raises when it cannot."""
    if old is not None:
        with contextlib.suppress(Exception):
            await old[0].close()
    if store.engine.dialect.name != "postgresql":
        return None
    connection = await store.engine.connect()
    try:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        for channel, heard in channels.items():
            await driver.add_listener(channel, _ignoring_arguments(heard))
    except BaseException:
        with contextlib.suppress(Exception):
            await connection.close()
        raise
    return connection, driver


def _ignoring_arguments(heard: Callable[[], None]) -> Callable[..., None]:
    """asyncpg calls a listener with (connection, pid, channel, payload): ignored here."""
    def call(*_: Any) -> None:
        heard()

    return call
