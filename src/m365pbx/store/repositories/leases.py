"""Leases: acquire, renew, release and fence, each decided by the database in one statement.

Time is the database's (PostgreSQL `statement_timestamp()`, SQLite `'now'`), never a
node's: nodes' clocks may be skewed (issue 25's soak skews them on purpose), and a lease
compared against one clock in one place cannot be believed expired by one node and live
by another. The holder keeps its own deadlines on its monotonic clock (core/leases.py).

Fencing: a write that depends on ownership runs `fence(lease)` first, in the same
transaction. On PostgreSQL it reads the lease row `FOR SHARE`: a takeover (an UPDATE of
that row) waits until the write commits, and a write after a takeover finds the newer
epoch. On SQLite a SELECT would not open the transaction (pysqlite begins one only at the
first change), so the fence is a no-op UPDATE that takes the file's write lock at once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, literal, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.core.leases import Lease
from m365pbx.store.errors import StoreError
from m365pbx.store.repositories._common import dialect_insert
from m365pbx.store.tables import LeaseRow

log = logging.getLogger(__name__)

__all__ = ["FencedOut", "LeaseRepository"]

# The text form SQLAlchemy stores SQLite datetimes in: microseconds, six digits.
_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%f"


class FencedOut(StoreError):
    """A write carried an epoch that is no longer the job's: another node owns it now."""


class LeaseRepository:
    """The `leases` table: one row per job, never deleted (its epoch only grows)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._postgres = session.get_bind().dialect.name == "postgresql"

    def _now(self) -> ColumnElement[Any]:
        if self._postgres:
            return func.statement_timestamp()
        # SQLite's %f is seconds with milliseconds: pad to the stored microseconds.
        return func.strftime(_SQLITE_FORMAT, "now").concat(literal_column("'000'"))

    def _later(self, seconds: float) -> ColumnElement[Any]:
        if self._postgres:
            return func.statement_timestamp() + func.make_interval(
                0, 0, 0, 0, 0, 0, literal(float(seconds)))
        return func.strftime(_SQLITE_FORMAT, "now", f"+{seconds:.3f} seconds").concat(
            literal_column("'000'"))

    def now_expression(self) -> ColumnElement[Any]:
        """The database's time now, as an SQL expression (the leases' clock)."""
        return self._now()

    def later_expression(self, seconds: float) -> ColumnElement[Any]:
        """The database's time `seconds` from now, as an SQL expression."""
        return self._later(seconds)

    @staticmethod
    def _returning() -> tuple[Any, ...]:
        return (LeaseRow.job, LeaseRow.holder, LeaseRow.epoch, LeaseRow.expires_at)

    async def acquire(self, job: str, holder: str, lifetime: float) -> Lease | None:
        """Take `job` for `holder` if nobody holds it or its lease expired; None if held.

        A first holder gets epoch 1; each takeover of an existing row adds one. A live
        lease is never taken, not even by its own holder's name: a restarted node (or two
        processes configured with the same node id) waits for the expiry like any other.
        """
        now, later = self._now(), self._later(lifetime)
        insert = dialect_insert(self.session, LeaseRow).values(
            job=job, holder=holder, epoch=1, expires_at=later, acquired_at=now, renewed_at=now)
        statement = insert.on_conflict_do_update(
            index_elements=[LeaseRow.job],
            set_={"holder": holder, "epoch": LeaseRow.epoch + 1, "expires_at": later,
                  "acquired_at": now, "renewed_at": now},
            where=LeaseRow.expires_at <= now,
        ).returning(*self._returning())
        row = (await self.session.execute(statement)).one_or_none()
        return None if row is None else Lease(*row)

    async def renew(self, lease: Lease, lifetime: float) -> Lease | None:
        """Extend a live lease still held at its epoch; None if it expired or changed hands."""
        statement = (
            update(LeaseRow)
            .where(LeaseRow.job == lease.job, LeaseRow.holder == lease.holder,
                   LeaseRow.epoch == lease.epoch, LeaseRow.expires_at > self._now())
            .values(expires_at=self._later(lifetime), renewed_at=self._now())
            .returning(*self._returning())
        )
        row = (await self.session.execute(statement)).one_or_none()
        return None if row is None else Lease(*row)

    async def release(self, lease: Lease) -> bool:
        """End a lease now so another node may take the job at once; whether it was ours."""
        statement = (
            update(LeaseRow)
            .where(LeaseRow.job == lease.job, LeaseRow.holder == lease.holder,
                   LeaseRow.epoch == lease.epoch)
            .values(expires_at=self._now())
            .returning(LeaseRow.epoch)
        )
        return (await self.session.execute(statement)).one_or_none() is not None

    async def fence(self, lease: Lease) -> None:
        """Refuse (FencedOut) unless `lease` is still the job's newest; hold that until commit.

        Expiry is not checked: a holder stops acting by its own deadline, and a write from a
        holder whose lease lapsed unnoticed is harmless until someone else takes the job,
        which raises the epoch.
        """
        mine = ((LeaseRow.job == lease.job) & (LeaseRow.holder == lease.holder)
                & (LeaseRow.epoch == lease.epoch))
        if self._postgres:
            statement: Any = select(LeaseRow.epoch).where(mine).with_for_update(read=True)
        else:
            statement = (update(LeaseRow).where(mine).values(epoch=LeaseRow.epoch)
                         .returning(LeaseRow.epoch))
        if (await self.session.execute(statement)).one_or_none() is not None:
            return
        current = await self.current(lease.job)
        if current is None:
            why = "no lease exists for it"
        elif current.epoch == lease.epoch:
            why = f"the lease belongs to {current.holder!r}"
        else:
            why = f"{current.holder!r} holds it at epoch {current.epoch}"
        raise FencedOut(f"write for {lease.job} refused: {lease.holder!r} acts at epoch "
                        f"{lease.epoch}, but {why}")

    async def current(self, job: str) -> Lease | None:
        """The job's lease row (live or expired), or None if it was never held."""
        row = (await self.session.execute(
            select(*self._returning()).where(LeaseRow.job == job))).one_or_none()
        return None if row is None else Lease(*row)

    async def all(self) -> list[Lease]:
        """Every job's lease (live or expired), by job: which node holds what."""
        rows = await self.session.execute(select(*self._returning()).order_by(LeaseRow.job))
        return [Lease(*row) for row in rows]

    async def database_now(self) -> datetime:
        """The database's time now, as the leases see it (aware UTC)."""
        value = await self.session.scalar(select(self._now()))
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
