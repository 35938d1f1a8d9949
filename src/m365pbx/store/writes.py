"""The store's one write path: one writer at a time on SQLite, retries, and a visible state.

SQLite allows one writer per file. Its busy timeout only helps a writer whose rival is
about to commit; a transaction kept open by a coroutine waiting for the event loop (busy
matching thousands of people at start-up) made every other writer give up with
`database is locked` (issue 18). So, within the process, SQLite transactions take turns
on an asyncio lock and never meet in SQLite's lock; the busy timeout is left for other
processes (the CLI). A write that still fails for a passing reason (a lock held by another
process, a PostgreSQL serialization failure or dropped connection) is tried again with
backoff; one that fails for good is logged with its reason, kept in `WriteHealth` for
/healthz and raised, never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import DBAPIError

from m365pbx.store.errors import StoreError

log = logging.getLogger(__name__)

# PostgreSQL SQLSTATEs worth another try: serialization failure, deadlock, lock not
# available, and the connection classes (08: connection exception, 57P0x: shutting down).
_PASSING_SQLSTATES = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03"}


class StoreWriteError(StoreError):
    """A write failed after its retries; the message names what was lost and why."""


class StoreBusyError(StoreError):
    """Another write of this process held the database longer than the store waits."""


@dataclass(frozen=True)
class WriteRetry:
    """How often and how patiently a write that failed for a passing reason is tried again."""

    attempts: int = 6
    initial: float = 0.2
    maximum: float = 5.0
    lock_wait: float = 60.0

    def delay(self, attempt: int) -> float:
        """Seconds before try number `attempt + 1`: exponential, with equal jitter."""
        ceiling = min(self.maximum, self.initial * 2 ** min(attempt, 20))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret


def is_passing(exc: BaseException) -> bool:
    """Whether a failed write may succeed when tried again (a lock, a lost connection)."""
    if isinstance(exc, StoreBusyError | TimeoutError | ConnectionError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    cause = exc.orig
    text = str(cause).lower()
    if "database is locked" in text or "database is busy" in text:
        return True
    code = str(getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None) or "")
    return code in _PASSING_SQLSTATES or code.startswith("08")


def is_malfunction(exc: BaseException) -> bool:
    """Whether the database itself failed (a full disk, a broken file), not the request."""
    return isinstance(exc, DBAPIError | OSError | StoreBusyError)


def reason_of(exc: BaseException) -> str:
    """The failure in one line, without SQL or parameters (they may hold personal data)."""
    cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    first = (str(cause).splitlines() or [""])[0].strip()
    return f"{type(cause).__name__}: {first[:200]}" if first else type(cause).__name__


class WriteHealth:
    """The store's writes as /healthz shows them: failing since when and why, or ok."""

    def __init__(self) -> None:
        self.retried = 0
        self.failed = 0
        self.last_error: str | None = None
        self.since: datetime | None = None
        self._failing = False

    def retrying(self) -> None:
        """A write failed for a passing reason and is tried again."""
        self.retried += 1

    def failed_for_good(self, what: str, reason: str) -> None:
        """A write failed after its retries."""
        self.failed += 1
        self.last_error = f"could not save {what}: {reason}"
        if not self._failing:
            self._failing, self.since = True, datetime.now(UTC)

    def succeeded(self) -> None:
        """A write committed: the store works again."""
        if self._failing:
            self._failing, self.since = False, datetime.now(UTC)
            self.last_error = None

    def report(self) -> dict[str, Any]:
        """The state in words for /healthz."""
        return {
            "state": "failing" if self._failing else "ok",
            "since": None if self.since is None else self.since.isoformat(),
            "last_error": self.last_error,
            "retried_writes": self.retried,
            "failed_writes": self.failed,
        }


class OneWriter:
    """Lets one transaction at a time into a SQLite database (a no-op for PostgreSQL)."""

    def __init__(self, enabled: bool, wait: float) -> None:
        self.enabled = enabled
        self.wait = wait
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._holder: asyncio.Task[Any] | None = None

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for this task's turn (at most `wait` seconds), hold it for the block."""
        if not self.enabled:
            yield
            return
        task = asyncio.current_task()
        if task is not None and task is self._holder:
            # Its own transaction is open: waiting for it would wait forever.
            raise RuntimeError("a store transaction was opened inside another one")
        lock = self._lock_for_this_loop()
        try:
            async with asyncio.timeout(self.wait):
                await lock.acquire()
        except TimeoutError:
            raise StoreBusyError(
                f"another write held the database for more than {self.wait:g} s") from None
        self._holder = task
        try:
            yield
        finally:
            self._holder = None
            lock.release()

    def _lock_for_this_loop(self) -> asyncio.Lock:
        # A lock belongs to one event loop; tests and the CLI run several loops in a row.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop = asyncio.Lock(), loop
        return self._lock
