"""SIP publications (PUBLISH ETags) per connection, so a restarted m365pbx takes them over."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.errors import NotFoundError, SecretKeyError
from m365pbx.store.repositories._common import dialect_insert
from m365pbx.store.secrets import SecretBox
from m365pbx.store.tables import SipPublication

log = logging.getLogger(__name__)

CHUNK = 500  # keys per DELETE: well below SQLite's bound-parameter limit


@dataclass(frozen=True)
class SipPublicationRecord:
    """One stored publication: the PBX user (key and fields), its ETag and its expiry."""

    key: str
    etag: str
    expires_at: datetime
    user_fields: Mapping[str, str] = field(default_factory=dict, repr=False)


class SipPublicationRepository:
    """Publications by PBX connection and PBX user key; the user's fields are encrypted."""

    def __init__(self, session: AsyncSession, box: SecretBox) -> None:
        self.session = session
        self.box = box

    async def save(
        self, connection_id: int, records: Sequence[SipPublicationRecord], *, now: datetime
    ) -> None:
        """Insert these publications of a connection, replacing any with the same key."""
        if not records:
            return
        insert = dialect_insert(self.session, SipPublication)
        statement = insert.on_conflict_do_update(
            index_elements=[SipPublication.pbx_connection_id, SipPublication.pbx_key],
            set_={
                name: getattr(insert.excluded, name)
                for name in ("etag", "user_fields_encrypted", "expires_at", "updated_at")
            },
        )
        rows = [
            {
                "pbx_connection_id": connection_id,
                "pbx_key": record.key,
                "etag": record.etag,
                "user_fields_encrypted": self.box.encrypt(
                    json.dumps(dict(record.user_fields), sort_keys=True)
                ),
                "expires_at": record.expires_at,
                "updated_at": now,
            }
            for record in records
        ]
        try:
            await self.session.execute(statement, rows)
        except IntegrityError:
            raise NotFoundError(f"PBX connection {connection_id} does not exist") from None

    async def load(self, connection_id: int, *, now: datetime) -> list[SipPublicationRecord]:
        """Return the connection's publications that have not expired at `now`, by key."""
        query = (
            select(SipPublication)
            .where(
                SipPublication.pbx_connection_id == connection_id,
                SipPublication.expires_at > now,
            )
            .order_by(SipPublication.pbx_key)
        )
        records = []
        for row in await self.session.scalars(query):
            what = f"user fields of SIP publication {row.pbx_key!r}"
            try:
                fields = json.loads(self.box.decrypt(row.user_fields_encrypted, what=what))
            except SecretKeyError as exc:
                # Without the fields there is no address to take the publication over at.
                log.warning("%s; that publication is left to expire", exc)
                continue
            records.append(SipPublicationRecord(row.pbx_key, row.etag, row.expires_at, fields))
        return records

    async def delete(self, connection_id: int, keys: Collection[str] | None = None) -> int:
        """Forget these publications of a connection (None: all of them); return how many."""
        where = SipPublication.pbx_connection_id == connection_id
        if keys is None:
            return await self._delete(where)
        ordered = sorted(keys)
        removed = 0
        for start in range(0, len(ordered), CHUNK):
            chunk = ordered[start : start + CHUNK]
            removed += await self._delete(where, SipPublication.pbx_key.in_(chunk))
        return removed

    async def delete_expired(self, connection_id: int, *, now: datetime) -> int:
        """Forget the connection's publications that expired by `now`; return how many."""
        return await self._delete(
            SipPublication.pbx_connection_id == connection_id, SipPublication.expires_at <= now
        )

    async def _delete(self, *where: object) -> int:
        result = await self.session.execute(
            delete(SipPublication).where(*where).execution_options(synchronize_session=False)  # type: ignore[arg-type]
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
