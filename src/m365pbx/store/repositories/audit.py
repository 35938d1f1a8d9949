"""The append-only audit log."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.tables import AuditEvent

REDACTED = "***"
_SECRET_WORDS = ("password", "secret", "token", "client_state", "private_key", "certificate_key")


def redact(details: Any) -> Any:
    """Return `details` with the values of secret-looking keys replaced, at any depth."""
    if isinstance(details, Mapping):
        return {
            str(key): REDACTED if _is_secret_key(str(key)) else redact(value)
            for key, value in details.items()
        }
    if isinstance(details, list | tuple):
        return [redact(item) for item in details]
    return details


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


class AuditRepository:
    """Append audit events and read them back newest first; nothing updates or deletes them."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def append(
        self,
        *,
        at: datetime,
        actor: str,
        action: str,
        object_type: str,
        object_id: str | int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Append one event; secret-looking keys in `details` are redacted before storing."""
        event = AuditEvent(
            at=at,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            details=redact(dict(details or {})),
        )
        self.session.add(event)
        await self.session.flush()
        return event

    async def list_recent(
        self,
        *,
        limit: int = 100,
        object_type: str | None = None,
        object_id: str | int | None = None,
    ) -> list[AuditEvent]:
        """Return up to `limit` events, newest first, optionally for one object type or object."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        query = select(AuditEvent)
        if object_type is not None:
            query = query.where(AuditEvent.object_type == object_type)
        if object_id is not None:
            query = query.where(AuditEvent.object_id == str(object_id))
        query = query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
        return list(await self.session.scalars(query))
