"""Reading back the people basic notifications named, in batches of up to 650."""

from __future__ import annotations

import asyncio
import logging

from m365pbx.clock import Clock
from m365pbx.graph.errors import M365Error, Throttled
from m365pbx.graph.presence import MAX_IDS_PER_REQUEST, PresenceReading, get_presences
from m365pbx.sync.teams_to_pbx.poller import PresencePoller

log = logging.getLogger(__name__)


class ReadBack:
    """Collects user ids for a moment, then reads them with getPresencesByUserId at once."""

    def __init__(self, poller: PresencePoller, clock: Clock, *, window: float = 0.2) -> None:
        self.poller = poller
        self.clock = clock
        self.window = window
        self._pending: dict[str, None] = {}
        self._wake = asyncio.Event()
        self.requests = 0

    def want(self, user_ids: list[str]) -> None:
        """Read these people's presence soon."""
        for user_id in user_ids:
            self._pending[user_id] = None
        self._wake.set()

    async def run(self) -> None:
        """Read back pending ids until cancelled (failed ids are tried again)."""
        while True:
            await self._wake.wait()
            await self.clock.sleep(self.window)
            self._wake.clear()
            ids = list(self._pending)[:MAX_IDS_PER_REQUEST]
            for user_id in ids:
                del self._pending[user_id]
            if self._pending:
                self._wake.set()
            try:
                self.requests += 1
                asked = self.clock.now().timestamp()
                readings = await self._read(ids)
                self.poller.feed(readings, asked_at=asked)
            except Throttled as exc:
                self.want(ids)
                await self.clock.sleep(exc.retry_after)
            except M365Error as exc:
                log.warning("reading back presence failed: %s", exc.describe())
                self.want(ids)
                await self.clock.sleep(5.0)

    async def _read(self, ids: list[str]) -> list[PresenceReading]:
        return await get_presences(self.poller.client, ids)
