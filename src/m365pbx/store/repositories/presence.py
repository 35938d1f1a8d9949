"""Presence state that must survive a restart: our Teams sessions and the last values per side."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.enums import Side
from m365pbx.store.errors import NotFoundError
from m365pbx.store.repositories._common import dialect_insert
from m365pbx.store.tables import LastPresence, PresenceSession

log = logging.getLogger(__name__)


class PresenceSessionRepository:
    """Our `setPresence` session per person: session id, value written, expiry."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(
        self,
        person_id: int,
        *,
        session_id: str,
        availability: str,
        activity: str,
        expires_at: datetime,
        now: datetime,
    ) -> PresenceSession:
        """Record that we (re)wrote the person's presence session at `now`."""
        row = await self.get(person_id)
        if row is None:
            row = PresenceSession(person_id=person_id)
            self.session.add(row)
        row.session_id = session_id
        row.availability = availability
        row.activity = activity
        row.expires_at = expires_at
        row.last_written_at = now
        try:
            await self.session.flush()
        except IntegrityError:
            raise NotFoundError(f"person {person_id} does not exist") from None
        return row

    async def get(self, person_id: int) -> PresenceSession | None:
        """Return the person's presence session, or None."""
        query = select(PresenceSession).where(PresenceSession.person_id == person_id)
        return (await self.session.scalars(query)).one_or_none()

    async def list_all(self, *, expiring_before: datetime | None = None) -> list[PresenceSession]:
        """Return the sessions (only those expiring before a time, if given), soonest first."""
        query = select(PresenceSession)
        if expiring_before is not None:
            query = query.where(PresenceSession.expires_at < expiring_before)
        order = (PresenceSession.expires_at, PresenceSession.id)
        return list(await self.session.scalars(query.order_by(*order)))

    async def delete(self, person_id: int) -> bool:
        """Forget the person's session (after clearPresence); return whether it existed."""
        result = await self.session.execute(
            delete(PresenceSession)
            .where(PresenceSession.person_id == person_id)
            .execution_options(synchronize_session="fetch")
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


class LastPresenceRepository:
    """The last presence seen on each side, and what we last wrote there (to spot echoes)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record_seen(
        self,
        person_id: int,
        side: Side,
        values: Mapping[str, Any],
        *,
        at: datetime,
        now: datetime,
        sequence: int | None = None,
    ) -> bool:
        """Store a presence seen on `side`; refuse (return False, log) one older than stored.

        Older means a lower sequence when both have one, else an earlier `at`. One statement
        (INSERT .. ON CONFLICT DO UPDATE .. WHERE newer), so two writers cannot interleave.
        """
        statement = _statement(self.session, "seen_sequence" if sequence is not None
                               else "seen")
        written = await self._execute(statement, person_id, {
            "person_id": person_id, "side": side, "seen_values": dict(values),
            "seen_sequence": sequence, "seen_at": at, "updated_at": now})
        if not written:
            log.warning(
                "refused a stale %s presence for person %s (sequence %s, at %s)",
                side.value,
                person_id,
                sequence,
                at.isoformat(),
            )
        return written

    async def record_written(
        self, person_id: int, side: Side, values: Mapping[str, Any], *, now: datetime
    ) -> None:
        """Store what we just wrote to `side`, so its echo can be recognised."""
        await self._execute(_statement(self.session, "written"), person_id, {
            "person_id": person_id, "side": side, "written_values": dict(values),
            "written_at": now, "updated_at": now})

    async def record_many(self, seen: list[dict[str, Any]], written: list[dict[str, Any]]
                          ) -> None:
        """Several people's records at once: one statement per kind (executemany).

        `seen` rows hold person_id, side, seen_values, seen_at, updated_at (no sequence);
        `written` rows person_id, side, written_values, written_at, updated_at. An older
        seen value is refused as in `record_seen`, but silently; a person missing from the
        store fails the whole call (NotFoundError), to be retried person by person.
        """
        try:
            if seen:
                await self.session.execute(_statement(self.session, "seen_many"),
                                           [{**row, "seen_sequence": None} for row in seen])
            if written:
                await self.session.execute(_statement(self.session, "written_many"), written)
        except IntegrityError:
            raise NotFoundError("a person of the batch does not exist") from None

    async def get(self, person_id: int, side: Side) -> LastPresence | None:
        """Return the stored presence of one side for the person, or None."""
        query = (
            select(LastPresence)
            .where(LastPresence.person_id == person_id, LastPresence.side == side)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(query)).one_or_none()

    async def list_for_person(self, person_id: int) -> list[LastPresence]:
        """Return the stored presence of both sides for the person."""
        query = (
            select(LastPresence)
            .where(LastPresence.person_id == person_id)
            .order_by(LastPresence.side)
            .execution_options(populate_existing=True)
        )
        return list(await self.session.scalars(query))

    async def _execute(self, statement: Any, person_id: int, values: dict[str, Any]) -> bool:
        try:
            result = await self.session.execute(statement, values)
        except IntegrityError:
            raise NotFoundError(f"person {person_id} does not exist") from None
        return result.first() is not None


# Building an INSERT .. ON CONFLICT with SQLAlchemy costs about 1 ms of CPU (its `excluded`
# columns alone 0.8 ms), more than executing it: at a thousand presence changes a second
# that was most of the event loop (issue 20). Each statement is built once per database
# kind with bind parameters, and SQLAlchemy's compiled cache does the rest.
_STATEMENTS: dict[tuple[str, str], Any] = {}


def _statement(session: AsyncSession, kind: str) -> Any:
    """The upsert of `kind` ("seen", "seen_sequence" or "written") for this database;
    "..._many" without RETURNING, for executemany."""
    key = (session.get_bind().dialect.name, kind)
    statement = _STATEMENTS.get(key)
    if statement is None:
        many = kind.endswith("_many")
        statement = _build(session, kind.removesuffix("_many"))
        _STATEMENTS[key] = statement if many else statement.returning(LastPresence.__table__.c.id)
    return _STATEMENTS[key]


def _build(session: AsyncSession, kind: str) -> Any:
    # On the table, not the mapped class: an ORM-enabled INSERT executed with parameters
    # takes SQLAlchemy's ORM bulk path, about 6 ms a statement.
    table: Any = LastPresence.__table__
    stored = table.c
    insert = dialect_insert(session, table)
    if kind == "written":
        columns = ("written_values", "written_at", "updated_at")
        insert = insert.values(person_id=bindparam("person_id"), side=bindparam("side"),
                               **{name: bindparam(name) for name in columns})
        return insert.on_conflict_do_update(
            index_elements=[stored.person_id, stored.side],
            set_={name: getattr(insert.excluded, name) for name in columns},
        )
    at = bindparam("seen_at", type_=stored.seen_at.type)
    if kind == "seen":
        newer = or_(stored.seen_at.is_(None), stored.seen_at <= at)
    else:
        newer = or_(
            stored.seen_sequence <= bindparam("seen_sequence", type_=stored.seen_sequence.type),
            and_(
                stored.seen_sequence.is_(None),
                or_(stored.seen_at.is_(None), stored.seen_at <= at),
            ),
        )
    seen = ("seen_values", "seen_sequence", "seen_at", "updated_at")
    insert = insert.values(person_id=bindparam("person_id"), side=bindparam("side"),
                           **{name: bindparam(name) for name in seen})
    return insert.on_conflict_do_update(
        index_elements=[stored.person_id, stored.side],
        set_={name: getattr(insert.excluded, name) for name in seen},
        where=newer,
    )
