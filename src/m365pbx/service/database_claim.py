"""One database, one installation: a node claims its database before it runs.

Two `m365pbx serve` processes on one database without `cluster.enabled` would both run
every tenant: two pollers, two sets of subscriptions fighting over Graph's one per
resource (409), two writers of each person's presence. So a node claims the database at
start and holds the claim for its whole life (docs/cluster.md "One database, one kind of
node"):

- **SQLite**: an exclusive `flock` on `<database file>.lock`, beside the database. The
  kernel drops it when the process ends, even by `kill -9`, so a stale lock never stays.
  The file says who holds it (node, process id, host, since when) for the refusal.
- **PostgreSQL**: an advisory lock on a connection of its own, which the server drops with
  the session: exclusive for a single node, shared for the nodes of a cluster (they share
  the database by leases). So a single node refuses to start beside a cluster, and a
  cluster node beside a single node; the holder is named from `pg_stat_activity`
  (the claim's connection carries the node's name as `application_name`).

A refused claim is a `DatabaseInUse` error: `serve` prints it and exits, nothing written.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import NullPool

from m365pbx.core.status import PartState, PartStatus
from m365pbx.errors import UserInputError
from m365pbx.store.db import create_engine, parse_database_url, sqlite_path

log = logging.getLogger(__name__)

# Advisory lock keys (two int4): "m3" "65" in ASCII, then 1 for "the database claim".
LOCK_CLASS = 0x6D333635
LOCK_ID = 1
CHECK_EVERY = 30.0
PART = "node/database_claim"
FIX = ("Stop the other m365pbx first, or run several nodes on PostgreSQL with "
       "cluster.enabled: true on every one (docs/cluster.md)")


class DatabaseInUse(UserInputError):
    """Another m365pbx node holds the database in a way this one cannot share."""


def lock_file_for(database: Path) -> Path:
    """Where the claim on a SQLite database is held: a file beside it."""
    return database.with_name(database.name + ".lock")


class DatabaseClaim:
    """This process's claim on its database, held from start to stop."""

    def __init__(self, url: str | URL, *, node: str, cluster: bool,
                 check_every: float = CHECK_EVERY) -> None:
        self.url = parse_database_url(url)
        self.node = node
        self.cluster = cluster
        self.check_every = check_every
        self.database = sqlite_path(self.url)
        self._file: Any = None
        self._engine: AsyncEngine | None = None
        self._connection: AsyncConnection | None = None
        self._state = PartState.STARTING
        self._since: datetime | None = None
        self._error: str | None = None

    @property
    def held(self) -> bool:
        """Whether this process holds its claim now."""
        return self._file is not None or self._connection is not None

    async def take(self) -> None:
        """Claim the database (once); DatabaseInUse names the node holding it otherwise."""
        if self.held:
            return
        if self.url.get_backend_name() == "postgresql":
            await self._take_advisory_lock()
        elif self.database is not None:
            self._take_lock_file(self.database)
        self._set(PartState.OK, None)

    async def release(self) -> None:
        """Give the claim up (a clean stop); a second call does nothing."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        await self._close_connection()
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def keep(self) -> None:
        """On PostgreSQL, look at the claim every `check_every` s (`check`), until cancelled."""
        if self.url.get_backend_name() != "postgresql":
            return
        while True:
            await asyncio.sleep(self.check_every)
            await self.check()

    async def check(self) -> None:
        """Take the claim again if its connection was lost (the server drops the advisory
        lock with the session); a refusal is logged and shown, and tried again next time."""
        if self.url.get_backend_name() != "postgresql" or await self._still_connected():
            return
        await self._close_connection()
        try:
            await self._take_advisory_lock()
        except DatabaseInUse as exc:
            log.error("lost the claim on the database with its connection: %s", exc)
            self._set(PartState.DEGRADED, f"lost the claim on the database: {exc}")
        except Exception as exc:
            why = f"cannot claim the database again after its connection was lost: {exc}"
            log.warning("%s", why)
            self._set(PartState.DEGRADED, why)
        else:
            log.info("claimed the database again after its connection was lost")
            self._set(PartState.OK, None)

    def status(self) -> list[PartStatus]:
        """The part `node/database_claim`: ok while held, degraded with the reason."""
        return [PartStatus(PART, "node", self._state, self._since, self._error,
                           FIX if self._error else None)]

    def _set(self, state: PartState, error: str | None) -> None:
        if (state, error) != (self._state, self._error):
            self._state, self._error = state, error
            self._since = datetime.now(UTC)

    # --- SQLite -------------------------------------------------------------------------------
    def _take_lock_file(self, database: Path) -> None:
        path = lock_file_for(database)
        path.parent.mkdir(parents=True, exist_ok=True)
        file = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = _holder_from_file(file.read())
            file.close()
            raise DatabaseInUse(
                f"another m365pbx node runs on the SQLite database {database} "
                f"({holder}): one SQLite database serves one node. {FIX}") from None
        except OSError:
            file.close()
            raise
        file.seek(0)
        file.truncate()
        file.write(json.dumps({"node": self.node, "pid": os.getpid(),
                               "host": socket.gethostname(),
                               "since": datetime.now(UTC).isoformat(timespec="seconds")}))
        file.flush()
        self._file = file

    # --- PostgreSQL ---------------------------------------------------------------------------
    async def _take_advisory_lock(self) -> None:
        if self._engine is None:
            self._engine = create_engine(
                self.url, poolclass=NullPool,
                connect_args={"server_settings": {"application_name": _app_name(self.node)}})
        connection = await self._engine.connect()
        try:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            function = "pg_try_advisory_lock_shared" if self.cluster else "pg_try_advisory_lock"
            taken = (await connection.execute(
                text(f"SELECT {function}(:c, :i)"), {"c": LOCK_CLASS, "i": LOCK_ID})).scalar()
            if not taken:
                holders = await _advisory_holders(connection)
                raise DatabaseInUse(self._refusal(holders))
        except BaseException:
            with contextlib.suppress(Exception):
                await connection.close()
            raise
        self._connection = connection

    def _refusal(self, holders: list[str]) -> str:
        who = ", ".join(holders) or "a node whose name the database does not show"
        database = self.url.render_as_string(hide_password=True)
        if self.cluster:
            return (f"a single m365pbx node (without cluster.enabled) runs on the database "
                    f"{database} ({who}): the nodes of a cluster cannot share it with one. "
                    f"{FIX}")
        return (f"another m365pbx node runs on the database {database} ({who}): without "
                f"cluster.enabled, one database serves one node. {FIX}")

    async def _still_connected(self) -> bool:
        if self._connection is None:
            return False
        try:
            await self._connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()


def _app_name(node: str) -> str:
    # PostgreSQL keeps at most 63 bytes of application_name.
    return f"m365pbx node {node}"[:63]


async def _advisory_holders(connection: AsyncConnection) -> list[str]:
    rows = (await connection.execute(text(
        "SELECT a.application_name, host(a.client_addr), a.backend_start "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.classid = :c AND l.objid = :i "
        "AND l.objsubid = 2 AND l.granted ORDER BY a.backend_start"),
        {"c": LOCK_CLASS, "i": LOCK_ID})).all()
    holders = []
    for name, address, started in rows:
        where = f" from {address}" if address else ""
        since = f" since {started:%Y-%m-%d %H:%M:%S %Z}".rstrip() if started else ""
        holders.append(f"{name or 'unnamed'}{where}{since}")
    return holders


def _holder_from_file(content: str) -> str:
    try:
        holder = json.loads(content)
        return (f"node {holder['node']}, process {holder['pid']} on {holder['host']}, "
                f"since {holder['since']}")
    except (ValueError, KeyError, TypeError):
        return "a process that did not say who it is"
