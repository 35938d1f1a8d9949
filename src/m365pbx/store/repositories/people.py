"""People: the match results of one PBX connection, replaced as a whole after each sync."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import bindparam, delete, func, insert, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.enums import MatchStatus
from m365pbx.store.errors import ConflictError, EmptyDirectoryError
from m365pbx.store.repositories._common import conflict_as, get_or_raise
from m365pbx.store.tables import PbxConnection, Person, Tenant

T = TypeVar("T")

Identity = tuple[str | None, int | None, str | None]
"""(pbx key, tenant id, Teams user id): a person row keeps its id only while all three hold."""

# Rows per statement; also keeps `IN (...)` under SQLite's old limit of 999 parameters.
CHUNK = 500

_STORED = (
    Person.id, Person.pbx_key, Person.tenant_id, Person.teams_user_id, Person.display_name,
    Person.status, Person.rule, Person.reason, Person.candidates,
)
_SUMMARY = (Person.id, Person.pbx_key, Person.teams_user_id, Person.display_name)


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """One match result as the matching step produces it."""

    status: MatchStatus
    display_name: str = ""
    pbx_key: str | None = None
    tenant_id: int | None = None
    teams_user_id: str | None = None
    rule: str | None = None
    reason: str | None = None
    candidates: Sequence[Mapping[str, Any]] = ()

    def __post_init__(self) -> None:
        if self.pbx_key is None and self.teams_user_id is None:
            raise ValueError("a person needs a PBX key, a Teams user id, or both")
        if self.teams_user_id is not None and self.tenant_id is None:
            raise ValueError("a Teams user id needs the tenant id it belongs to")

    @property
    def identity(self) -> Identity:
        """Return what makes this the same person as a stored row."""
        return (self.pbx_key, self.tenant_id, self.teams_user_id)


class PersonSummary(NamedTuple):
    """A stored person's id, keys and name, without the rest of the row."""

    id: int
    pbx_key: str | None
    teams_user_id: str | None
    display_name: str


@dataclass(frozen=True)
class ReplaceReport:
    """How replacing a connection's people changed the stored rows."""

    added: int
    updated: int
    unchanged: int
    removed: int


class PeopleRepository:
    """Match results per PBX connection."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def replace_for_connection(
        self, pbx_connection_id: int, people: Sequence[PersonRecord], *, allow_empty: bool = False
    ) -> ReplaceReport:
        """Make the connection's people exactly `people`, keeping the ids of those unchanged.

        Refuses an empty list unless `allow_empty` (a failed fetch must not wipe a good
        directory). A person whose PBX key or Teams user changes is a new row: presence
        sessions and last presence of the old one go with it. Run inside one transaction.
        """
        await get_or_raise(self.session, PbxConnection, pbx_connection_id, "PBX connection")
        if not people and not allow_empty:
            raise EmptyDirectoryError(
                f"refusing to replace the people of PBX connection {pbx_connection_id} with an "
                "empty list (pass allow_empty=True if the directory really is empty)"
            )
        _refuse_duplicates(people)
        # The statements below bypass the unit of work: what it holds goes to the database first.
        await self.session.flush()
        # Plain rows and chunked statements instead of ORM objects: a directory of 50,000
        # people as ORM rows took about 130 MB at once (docs/benchmarks.md, start-up).
        existing = {
            (row.pbx_key, row.tenant_id, row.teams_user_id): row
            for row in await self.session.execute(
                select(*_STORED).where(Person.pbx_connection_id == pbx_connection_id)
            )
        }
        wanted = {record.identity: record for record in people}
        gone = [row.id for key, row in existing.items() if key not in wanted]
        # Deletes first: a PBX key moving to another Teams user would collide otherwise.
        for ids in _chunks(gone):
            # ORM-enabled, so that rows this session has loaded are marked deleted too.
            await self.session.execute(delete(Person).where(Person.id.in_(ids)))
        changed: list[tuple[int, PersonRecord]] = []
        new: list[PersonRecord] = []
        unchanged = 0
        for key, record in wanted.items():
            row = existing.get(key)
            if row is None:
                new.append(record)
            elif any(getattr(row, name) != value for name, value in _values(record).items()):
                changed.append((row.id, record))
            else:
                unchanged += 1
        del existing
        message = f"cannot store the people of PBX connection {pbx_connection_id}"
        table = Person.metadata.tables[Person.__tablename__]
        with conflict_as(message):
            # Updates before inserts, in the order the ORM's unit of work used; the
            # parameters are built one chunk at a time.
            update_row = update(table).where(table.c.id == bindparam("person_id"))
            for pairs in _chunks(changed):
                await self.session.execute(
                    update_row, [{"person_id": i, **_values(r)} for i, r in pairs]
                )
            for records in _chunks(new):
                await self.session.execute(
                    insert(table),
                    [{"pbx_connection_id": pbx_connection_id, **_values(r)} for r in records],
                )
        await self._refresh_loaded(person_id for person_id, _ in changed)
        return ReplaceReport(
            added=len(new), updated=len(changed), unchanged=unchanged, removed=len(gone)
        )

    async def get(self, person_id: int) -> Person:
        """Return the person with this id or raise NotFoundError."""
        return await get_or_raise(self.session, Person, person_id, "person")

    async def list_for_connection(
        self, pbx_connection_id: int, *, status: MatchStatus | None = None
    ) -> list[Person]:
        """Return the connection's people, optionally only those with one match status."""
        query = select(Person).where(Person.pbx_connection_id == pbx_connection_id)
        if status is not None:
            query = query.where(Person.status == status)
        return list(await self.session.scalars(query.order_by(Person.id)))

    async def summaries_for_connection(
        self, pbx_connection_id: int, *, status: MatchStatus | None = None
    ) -> list[PersonSummary]:
        """Return id, keys and name of the connection's people as plain rows, by id."""
        query = select(*_SUMMARY).where(Person.pbx_connection_id == pbx_connection_id)
        if status is not None:
            query = query.where(Person.status == status)
        rows = await self.session.execute(query.order_by(Person.id))
        return [PersonSummary(*row) for row in rows]

    async def _refresh_loaded(self, person_ids: Iterable[int]) -> None:
        # Rows changed with UPDATE statements: ORM objects this session already holds would
        # otherwise keep showing the old values.
        for person_id in person_ids:
            key = inspect(Person).identity_key_from_primary_key((person_id,))
            loaded = self.session.identity_map.get(key)
            if loaded is not None:
                await self.session.refresh(loaded)

    async def find_by_pbx_key(self, pbx_connection_id: int, pbx_key: str) -> Person | None:
        """Return the person with this PBX key on this connection, or None."""
        query = select(Person).where(
            Person.pbx_connection_id == pbx_connection_id, Person.pbx_key == pbx_key
        )
        return (await self.session.scalars(query)).one_or_none()

    async def find_by_teams_user(self, tenant_id: int, teams_user_id: str) -> list[Person]:
        """Return the rows of this Teams user, one per PBX connection that knows them."""
        query = select(Person).where(
            Person.tenant_id == tenant_id, Person.teams_user_id == teams_user_id
        )
        return list(await self.session.scalars(query.order_by(Person.id)))

    async def count_by_status(self, pbx_connection_id: int) -> dict[MatchStatus, int]:
        """Return how many people of the connection have each match status."""
        query = (
            select(Person.status, func.count())
            .where(Person.pbx_connection_id == pbx_connection_id)
            .group_by(Person.status)
        )
        counts = {status: 0 for status in MatchStatus}
        for status, count in (await self.session.execute(query)).all():
            counts[MatchStatus(status)] = count
        return counts

    async def matched_by_tenant(self) -> dict[str, int]:
        """Return how many matched people each tenant has (over every PBX connection), by
        tenant name; a tenant without any is left out."""
        counted = (
            select(Person.tenant_id, func.count().label("people"))
            .where(Person.status == MatchStatus.MATCHED, Person.tenant_id.is_not(None))
            .group_by(Person.tenant_id)
            .subquery()
        )
        query = select(Tenant.name, counted.c.people).join(
            counted, counted.c.tenant_id == Tenant.id)
        return {name: int(count) for name, count in (await self.session.execute(query)).all()}


def _values(record: PersonRecord) -> dict[str, Any]:
    return {
        "pbx_key": record.pbx_key,
        "tenant_id": record.tenant_id,
        "teams_user_id": record.teams_user_id,
        "display_name": record.display_name,
        "status": record.status,
        "rule": record.rule,
        "reason": record.reason,
        "candidates": [dict(candidate) for candidate in record.candidates],
    }


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _refuse_duplicates(people: Sequence[PersonRecord]) -> None:
    identities = Counter(record.identity for record in people)
    keys = Counter(record.pbx_key for record in people if record.pbx_key is not None)
    twice_identity = [identity for identity, count in identities.items() if count > 1]
    twice_key = sorted(key for key, count in keys.items() if count > 1)
    if twice_identity or twice_key:
        shown = twice_key or [str(identity) for identity in twice_identity]
        raise ConflictError(
            f"the new directory lists the same person more than once: {', '.join(shown[:5])}"
        )
