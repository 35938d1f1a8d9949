"""Whether the presence server answers: an OPTIONS keep-alive (RFC 3261 §11) on a timer.

A server that restarts after a crash has forgotten every publication and subscription
(db_text keeps nothing; Kamailio's presence module docs), and a client only learns it
at its next refresh. The keep-alive shortens that: when the server stops answering it
is reported down, and when it answers again (or after a lost TCP connection, which
usually means a restart) the owner is told to re-assert everything at once. A restart
quicker than the keep-alive interval goes unnoticed by OPTIONS over UDP (the chaos soak
showed it: Kamailio killed and back within 3 s), so after each answered probe the owner
may check one thing the server should still hold (`on_steady`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from m365pbx.pbx.sip.transactions import TransactionAborted
from m365pbx.pbx.sip.transport import ListenError, TransportError
from m365pbx.pbx.sip.useragent import Leg, UserAgent, host_for_uri

log = logging.getLogger(__name__)


class ServerHealth:
    """Probes the server every `interval` seconds; `up` is None until the first answer."""

    def __init__(
        self,
        ua: UserAgent,
        domain: str,
        *,
        interval: float,
        timeout: float,
        on_down: Callable[[], None],
        on_up: Callable[[bool], None],
        on_steady: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._ua = ua
        self._domain = domain
        self.interval = interval
        self.timeout = timeout
        self._on_down = on_down
        self._on_up = on_up
        self._on_steady = on_steady
        self.up: bool | None = None
        self.error = ""
        self._suspect = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin probing (the first probe goes out at once)."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop probing."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def suspect_restart(self) -> None:
        """The server may have restarted (TCP connection lost): probe now, re-assert if up."""
        self._suspect = True
        self._wake.set()

    async def probe(self) -> bool:
        """One OPTIONS exchange; any response counts as an answer."""
        host, port = self._ua.config.server
        target = f"sip:{host_for_uri(host)}:{port}"
        leg = Leg(
            local_uri=f"sip:m365pbx@{host_for_uri(self._domain)}", remote_uri=target, target=target
        )
        try:
            await self._ua.open()  # resolves the name again after a failure
            # Not limited by max_in_flight: a burst of PUBLISHes must not look like an outage.
            await self._ua.send(leg, "OPTIONS", limit=self.timeout, limited=False)
        except ListenError as exc:
            self.error = str(exc)  # our side, not the server: said as it is
            return False
        except (TimeoutError, TransactionAborted, TransportError) as exc:
            reason = str(exc) or "no answer"
            self.error = f"presence server {host}:{port} does not answer ({reason})"
            return False
        return True

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            answered = await self.probe()
            suspect, self._suspect = self._suspect, False
            if answered:
                previous, self.up = self.up, True
                if previous is False or (previous is True and suspect):
                    log.info("presence server answers again; re-asserting")
                    self._on_up(True)
                elif previous is None:
                    self._on_up(False)
                elif self._on_steady is not None:
                    try:
                        await self._on_steady()
                    except Exception:
                        log.exception("checking what the presence server still holds failed")
            elif self.up is not False:
                self.up = False
                log.warning("%s", self.error)
                self._on_down()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
