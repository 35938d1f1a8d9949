"""Each person's calendar blocks ahead, so a restart rebuilds the timers before any read."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.repositories._per_person import PersonTexts
from m365pbx.store.secrets import SecretBox
from m365pbx.store.tables import CalendarBlockRow

# One block as stored: PBX presence, start and end (POSIX seconds), note.
StoredBlock = tuple[str, float, float, str]


class CalendarBlockRepository:
    """Blocks by person, encrypted (their notes are meeting subjects)."""

    def __init__(self, session: AsyncSession, box: SecretBox) -> None:
        self.rows = PersonTexts(session, box, CalendarBlockRow, "blocks_encrypted",
                                "calendar blocks")

    async def save(self, blocks: Mapping[int, Sequence[StoredBlock]], *, now: datetime) -> None:
        """Replace these people's blocks; a person with none loses their row."""
        await self.rows.delete([person_id for person_id, items in blocks.items() if not items])
        await self.rows.save({person_id: json.dumps([list(b) for b in items])
                              for person_id, items in blocks.items() if items}, now=now)

    async def load(self, person_ids: Collection[int]) -> dict[int, list[StoredBlock]]:
        """These people's stored blocks (those without any are absent)."""
        return {person_id: [(str(p), float(s), float(e), str(n))
                            for p, s, e, n in json.loads(text)]
                for person_id, text in (await self.rows.load(person_ids)).items()}

    async def delete(self, person_ids: Collection[int]) -> int:
        """Forget these people's blocks; return how many rows went."""
        return await self.rows.delete(person_ids)
