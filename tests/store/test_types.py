"""Datetimes come back aware and in UTC on both backends; naive ones are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import StatementError

from m365pbx.store import Store

PLUS_TWO = timezone(timedelta(hours=2))


async def test_datetime_round_trip_is_aware_utc(store: Store) -> None:
    written = datetime(2026, 3, 29, 3, 30, 15, 123456, tzinfo=PLUS_TWO)  # DST night in Europe
    async with store.transaction() as tx:
        await tx.audit.append(at=written, actor="a", action="b", object_type="c")
    async with store.transaction() as tx:
        (event,) = await tx.audit.list_recent()
    assert event.at == written
    assert event.at.tzinfo is not None and event.at.utcoffset() == timedelta(0)
    assert (event.at.hour, event.at.microsecond) == (1, 123456)


async def test_datetimes_compare_in_sql_across_zones(store: Store) -> None:
    early = datetime(2026, 1, 1, 12, 0, tzinfo=PLUS_TWO)  # 10:00 UTC
    late = datetime(2026, 1, 1, 11, 0, tzinfo=UTC)
    async with store.transaction() as tx:
        await tx.audit.append(at=late, actor="a", action="late", object_type="c")
        await tx.audit.append(at=early, actor="a", action="early", object_type="c")
    async with store.transaction() as tx:
        # ORDER BY runs in SQL: it only holds if both were stored in one zone (UTC).
        assert [e.action for e in await tx.audit.list_recent()] == ["late", "early"]


async def test_naive_datetime_is_refused(store: Store) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        async with store.transaction() as tx:
            await tx.audit.append(at=datetime(2026, 1, 1), actor="a", action="b", object_type="c")
