"""Each person's own contacts (packed) and folder delta links, so a restart answers at once."""

from __future__ import annotations

import base64
import json
import logging
import zlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.errors import NotFoundError, SecretKeyError
from m365pbx.store.repositories._common import dialect_insert
from m365pbx.store.secrets import SecretBox
from m365pbx.store.tables import ContactBookRow, Person, Tenant

log = logging.getLogger(__name__)

CHUNK = 500  # person ids per statement: well below SQLite's bound-parameter limit


@dataclass(frozen=True, slots=True)
class StoredBook:
    """One person's contacts as the index packs them, and where each folder's delta stands."""

    records: tuple[bytes, ...]
    folders: Mapping[str, tuple[int, str]]  # folder id → (the reader's number, delta link)
    format: int  # of the records: a book of another format is read again instead


class ContactBookRepository:
    """Contact books by person, encrypted as a whole (names, numbers, mail addresses)."""

    def __init__(self, session: AsyncSession, box: SecretBox) -> None:
        self.session = session
        self.box = box

    async def save(self, books: Mapping[int, StoredBook], *, now: datetime) -> None:
        """Replace these people's books."""
        rows = [{"person_id": person_id, "book_encrypted": self.box.encrypt(_dumps(book)),
                 "updated_at": now} for person_id, book in books.items()]
        if not rows:
            return
        insert = dialect_insert(self.session, ContactBookRow)
        statement = insert.on_conflict_do_update(
            index_elements=[ContactBookRow.person_id],
            set_={name: getattr(insert.excluded, name)
                  for name in ("book_encrypted", "updated_at")})
        try:
            await self.session.execute(statement, rows)
        except IntegrityError:
            raise NotFoundError("a person whose contacts were saved does not exist") from None

    async def load(self, person_ids: Collection[int]) -> dict[int, StoredBook]:
        """These people's stored books (those without one are absent)."""
        ordered = sorted(person_ids)
        found: dict[int, StoredBook] = {}
        for start in range(0, len(ordered), CHUNK):
            query = select(ContactBookRow).where(
                ContactBookRow.person_id.in_(ordered[start:start + CHUNK]))
            for row in await self.session.scalars(query):
                what = f"contacts of person {row.person_id}"
                try:
                    found[row.person_id] = _loads(self.box.decrypt(row.book_encrypted,
                                                                   what=what))
                except SecretKeyError as exc:
                    log.warning("%s; read again from Outlook instead", exc)
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("%s unreadable (%s); read again from Outlook instead", what,
                                type(exc).__name__)
        return found

    async def delete(self, person_ids: Collection[int]) -> int:
        """Forget these people's books; return how many rows went."""
        ordered = sorted(person_ids)
        removed = 0
        for start in range(0, len(ordered), CHUNK):
            result = await self.session.execute(
                delete(ContactBookRow)
                .where(ContactBookRow.person_id.in_(ordered[start:start + CHUNK]))
                .execution_options(synchronize_session=False))
            removed += int(result.rowcount)  # type: ignore[attr-defined]
        return removed

    async def delete_for_tenant(self, tenant: str) -> int:
        """Forget the books of every person of a tenant (by name); return how many went."""
        people = select(Person.id).join(Tenant, Person.tenant_id == Tenant.id).where(
            Tenant.name == tenant)
        result = await self.session.execute(
            delete(ContactBookRow).where(ContactBookRow.person_id.in_(people))
            .execution_options(synchronize_session=False))
        return int(result.rowcount)  # type: ignore[attr-defined]


def _dumps(book: StoredBook) -> str:
    # Compressed before it is encrypted (a third of the size: names, companies and mail
    # domains repeat); base64 since the box encrypts text.
    text = json.dumps({"format": book.format,
                       "folders": {folder: list(pair) for folder, pair in book.folders.items()},
                       "records": [record.decode() for record in book.records]},
                      ensure_ascii=False, separators=(",", ":"))
    return base64.b64encode(zlib.compress(text.encode(), 6)).decode()


def _loads(text: str) -> StoredBook:
    try:
        data = json.loads(zlib.decompress(base64.b64decode(text, validate=True)))
    except zlib.error as exc:
        raise ValueError("not a compressed book") from exc
    return StoredBook(tuple(record.encode() for record in data["records"]),
                      {str(folder): (int(number), str(link))
                       for folder, (number, link) in data["folders"].items()},
                      int(data["format"]))
