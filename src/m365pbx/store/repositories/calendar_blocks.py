"""Each person's calendar blocks ahead, so a restart rebuilds the timers before any read."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.errors import NotFoundError, SecretKeyError
from m365pbx.store.repositories._common import dialect_insert
from m365pbx.store.secrets import SecretBox
from m365pbx.store.tables import CalendarBlockRow

log = logging.getLogger(__name__)

CHUNK = 500  # person ids per statement: well below SQLite's bound-parameter limit
# One block as stored: PBX presence, start and end (POSIX seconds), note.
StoredBlock = tuple[str, float, float, str]


class CalendarBlockRepository:
    """Blocks by person, encrypted (their notes are meeting subjects)."""

    def __init__(self, session: AsyncSession, box: SecretBox) -> None:
        self.session = session
        self.box = box

    async def save(self, blocks: Mapping[int, Sequence[StoredBlock]], *, now: datetime) -> None:
        """Replace these people's blocks; a person with none loses their row."""
        empty = [person_id for person_id, items in blocks.items() if not items]
        await self.delete(empty)
        rows = [{"person_id": person_id,
                 "blocks_encrypted": self.box.encrypt(json.dumps([list(b) for b in items])),
                 "updated_at": now}
                for person_id, items in blocks.items() if items]
        if not rows:
            return
        insert = dialect_insert(self.session, CalendarBlockRow)
        statement = insert.on_conflict_do_update(
            index_elements=[CalendarBlockRow.person_id],
            set_={name: getattr(insert.excluded, name)
                  for name in ("blocks_encrypted", "updated_at")})
        try:
            await self.session.execute(statement, rows)
        except IntegrityError:
            raise NotFoundError("a person whose calendar blocks were saved does not exist") \
                from None

    async def load(self, person_ids: Collection[int]) -> dict[int, list[StoredBlock]]:
        """These people's stored blocks (those without any are absent)."""
        ordered = sorted(person_ids)
        found: dict[int, list[StoredBlock]] = {}
        for start in range(0, len(ordered), CHUNK):
            query = select(CalendarBlockRow).where(
                CalendarBlockRow.person_id.in_(ordered[start:start + CHUNK]))
            for row in await self.session.scalars(query):
                what = f"calendar blocks of person {row.person_id}"
                try:
                    items = json.loads(self.box.decrypt(row.blocks_encrypted, what=what))
                except SecretKeyError as exc:
                    log.warning("%s; read again from Outlook instead", exc)
                    continue
                found[row.person_id] = [(str(p), float(s), float(e), str(n))
                                        for p, s, e, n in items]
        return found

    async def delete(self, person_ids: Collection[int]) -> int:
        """Forget these people's blocks; return how many rows went."""
        ordered = sorted(person_ids)
        removed = 0
        for start in range(0, len(ordered), CHUNK):
            result = await self.session.execute(
                delete(CalendarBlockRow)
                .where(CalendarBlockRow.person_id.in_(ordered[start:start + CHUNK]))
                .execution_options(synchronize_session=False))
            removed += int(result.rowcount)  # type: ignore[attr-defined]
        return removed
