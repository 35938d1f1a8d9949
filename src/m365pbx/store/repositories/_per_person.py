"""One encrypted text per person, saved, read and forgotten in chunks (kept read-aheads)."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.errors import NotFoundError, SecretKeyError
from m365pbx.store.repositories._common import dialect_insert
from m365pbx.store.secrets import SecretBox

log = logging.getLogger(__name__)

CHUNK = 500  # person ids per statement: well below SQLite's bound-parameter limit


class PersonTexts:
    """Rows of `table` keyed by a unique `person_id`, their text encrypted in `column`."""

    def __init__(self, session: AsyncSession, box: SecretBox, table: Any, column: str,
                 what: str) -> None:
        self.session = session
        self.box = box
        self.table = table  # a declarative class with person_id, `column` and updated_at
        self.column = column
        self.what = what  # what a row holds, for errors and logs ("calendar blocks")

    async def save(self, texts: Mapping[int, str], *, now: datetime) -> None:
        """Replace these people's texts (encrypted here)."""
        rows = [{"person_id": person_id, self.column: self.box.encrypt(text),
                 "updated_at": now} for person_id, text in texts.items()]
        if not rows:
            return
        insert = dialect_insert(self.session, self.table)
        statement = insert.on_conflict_do_update(
            index_elements=[self.table.person_id],
            set_={name: getattr(insert.excluded, name) for name in (self.column, "updated_at")})
        try:
            await self.session.execute(statement, rows)
        except IntegrityError:
            raise NotFoundError(f"a person whose {self.what} were saved does not exist") \
                from None

    async def load(self, person_ids: Collection[int]) -> dict[int, str]:
        """These people's decrypted texts; a row the key cannot open is logged and left out."""
        ordered = sorted(person_ids)
        found: dict[int, str] = {}
        for start in range(0, len(ordered), CHUNK):
            query = select(self.table).where(
                self.table.person_id.in_(ordered[start:start + CHUNK]))
            for row in await self.session.scalars(query):
                try:
                    found[row.person_id] = self.box.decrypt(
                        getattr(row, self.column), what=self.label(row.person_id))
                except SecretKeyError as exc:
                    log.warning("%s; read again from Outlook instead", exc)
        return found

    def label(self, person_id: int) -> str:
        """How a person's row is named in errors and logs."""
        return f"{self.what} of person {person_id}"

    async def delete(self, person_ids: Collection[int]) -> int:
        """Forget these people's rows; return how many went."""
        ordered = sorted(person_ids)
        removed = 0
        for start in range(0, len(ordered), CHUNK):
            result = await self.session.execute(
                delete(self.table)
                .where(self.table.person_id.in_(ordered[start:start + CHUNK]))
                .execution_options(synchronize_session=False))
            removed += int(result.rowcount)  # type: ignore[attr-defined]
        return removed
