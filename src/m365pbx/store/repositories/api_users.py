"""The user directory API clients uploaded, per API connection, so a restart keeps it."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.errors import NotFoundError, SecretKeyError
from m365pbx.store.repositories._common import dialect_insert
from m365pbx.store.secrets import SecretBox
from m365pbx.store.tables import ApiUser

log = logging.getLogger(__name__)

CHUNK = 500  # rows per statement: well below SQLite's bound-parameter limit


@dataclass(frozen=True, slots=True)
class ApiUserRecord:
    """One stored PBX user: the key and the text fields the client uploaded."""

    key: str
    fields: Mapping[str, str] = field(default_factory=dict, repr=False)


class ApiUserRepository:
    """Uploaded users by PBX connection and key; their fields are encrypted."""

    def __init__(self, session: AsyncSession, box: SecretBox) -> None:
        self.session = session
        self.box = box

    async def save(
        self, connection_id: int, records: Sequence[ApiUserRecord], *, now: datetime
    ) -> None:
        """Insert these users of a connection, replacing any with the same key."""
        insert = dialect_insert(self.session, ApiUser)
        statement = insert.on_conflict_do_update(
            index_elements=[ApiUser.pbx_connection_id, ApiUser.pbx_key],
            set_={
                name: getattr(insert.excluded, name)
                for name in ("user_fields_encrypted", "updated_at")
            },
        )
        # Core execution on the session's connection: the ORM's bulk path costs about twice
        # as much, and a first upload can hold 100,000 users. In chunks, so that encrypting
        # them does not hold the loop for long.
        connection = await self.session.connection()
        for start in range(0, len(records), CHUNK):
            rows = [
                {
                    "pbx_connection_id": connection_id,
                    "pbx_key": record.key,
                    "user_fields_encrypted": self.box.encrypt(
                        json.dumps(dict(record.fields), sort_keys=True)
                    ),
                    "updated_at": now,
                }
                for record in records[start : start + CHUNK]
            ]
            try:
                await connection.execute(statement, rows)
            except IntegrityError:
                raise NotFoundError(f"PBX connection {connection_id} does not exist") from None

    async def load(self, connection_id: int) -> list[ApiUserRecord]:
        """Return the connection's users by key, leaving out any the key cannot decrypt."""
        query = (
            select(ApiUser.pbx_key, ApiUser.user_fields_encrypted)
            .where(ApiUser.pbx_connection_id == connection_id)
            .order_by(ApiUser.pbx_key)
        )
        records = []
        unreadable = 0
        for key, token in await self.session.execute(query):
            try:
                fields = json.loads(self.box.decrypt(token, what=f"fields of API user {key!r}"))
            except SecretKeyError as exc:
                if not unreadable:
                    log.warning("%s; such users are missing until the client uploads again", exc)
                unreadable += 1
                continue
            records.append(ApiUserRecord(key, fields))
        if unreadable > 1:
            log.warning("%d stored API users of PBX connection %d could not be decrypted",
                        unreadable, connection_id)
        return records

    async def count(self, connection_id: int) -> int:
        """How many users the store holds for a connection (readable or not)."""
        query = select(func.count()).select_from(ApiUser).where(
            ApiUser.pbx_connection_id == connection_id
        )
        return int(await self.session.scalar(query) or 0)

    async def delete(self, connection_id: int, keys: Collection[str] | None = None) -> int:
        """Forget these users of a connection (None: all of them); return how many."""
        where = ApiUser.pbx_connection_id == connection_id
        if keys is None:
            return await self._delete(where)
        ordered = sorted(keys)
        removed = 0
        for start in range(0, len(ordered), CHUNK):
            chunk = ordered[start : start + CHUNK]
            removed += await self._delete(where, ApiUser.pbx_key.in_(chunk))
        return removed

    async def _delete(self, *where: object) -> int:
        result = await self.session.execute(
            delete(ApiUser).where(*where).execution_options(synchronize_session=False)  # type: ignore[arg-type]
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
