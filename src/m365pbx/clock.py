"""The one source of time for services: `now()` and `sleep()`.

Tests pass a virtual clock (the simulator's VirtualClock fits this protocol) so that a
3-hour call or a 60-minute subscription takes milliseconds (docs/architecture.md, "Time").
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """What services need from time."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def sleep(self, seconds: float) -> Awaitable[None]:
        """Wait `seconds` of this clock's time, counted from the call (not from the first await)."""
        ...


class SystemClock:
    """Real time."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of real time."""
        await asyncio.sleep(max(0.0, seconds))
