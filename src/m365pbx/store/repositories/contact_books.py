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
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.repositories._per_person import PersonTexts
from m365pbx.store.secrets import SecretBox
from m365pbx.store.tables import ContactBookRow, Person, Tenant

log = logging.getLogger(__name__)


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
        self.rows = PersonTexts(session, box, ContactBookRow, "book_encrypted", "contacts")

    async def save(self, books: Mapping[int, StoredBook], *, now: datetime) -> None:
        """Replace these people's books."""
        await self.rows.save({person_id: _dumps(book) for person_id, book in books.items()},
                             now=now)

    async def load(self, person_ids: Collection[int]) -> dict[int, StoredBook]:
        """These people's stored books (those without one are absent)."""
        found: dict[int, StoredBook] = {}
        for person_id, text in (await self.rows.load(person_ids)).items():
            try:
                found[person_id] = _loads(text)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s unreadable (%s); read again from Outlook instead",
                            self.rows.label(person_id), type(exc).__name__)
        return found

    async def delete(self, person_ids: Collection[int]) -> int:
        """Forget these people's books; return how many rows went."""
        return await self.rows.delete(person_ids)

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
