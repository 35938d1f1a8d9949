"""The store side of the parts' statuses: the recorder's sink and the CLI's reader."""

from __future__ import annotations

import socket
from collections.abc import Sequence

from m365pbx.clock import Clock
from m365pbx.core.status import PartStatus
from m365pbx.store import Repositories, Store

__all__ = ["StoreStatusSink", "default_node", "read_statuses"]


def default_node() -> str:
    """This node's name in the store: the host name (one m365pbx per host)."""
    return socket.gethostname() or "m365pbx"


class StoreStatusSink:
    """Writes the statuses of one node through the store's retried write path."""

    def __init__(self, store: Store, clock: Clock, node: str) -> None:
        self.store = store
        self.clock = clock
        self.node = node
        self._first = True

    async def save(self, statuses: Sequence[PartStatus], *, gone: Sequence[str]) -> None:
        """Replace these statuses and forget the parts in `gone` (one transaction).

        The first save of a run holds every part: what an earlier run of this node left
        (a connection removed since) is deleted then, or it would look stale forever.
        """
        now = self.clock.now()
        first = self._first

        async def write(tx: Repositories) -> None:
            await tx.part_status.save(self.node, statuses, now=now)
            if first:
                await tx.part_status.keep_only(self.node, [s.part for s in statuses])
            elif gone:
                await tx.part_status.forget(self.node, gone)

        await self.store.write(write, what="the parts' states")
        self._first = False


async def read_statuses(store: Store) -> list[PartStatus]:
    """Every node's recorded statuses (the CLI, another node)."""
    async with store.transaction() as tx:
        return await tx.part_status.all()
