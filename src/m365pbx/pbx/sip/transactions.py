"""Non-INVITE transactions (RFC 3261 §17.1.2 client, §17.2.2 server) over one transport.

Client side: over UDP the request is retransmitted by Timer E (T1, doubling up to T2; at
T2 once a provisional response came), and Timer F (64·T1) ends the wait. Over TCP only
Timer F runs. Responses match by the top Via branch and the CSeq method (§17.1.3).
Server side: a retransmitted request gets the cached response again for Timer J (64·T1
over UDP), so the server's NOTIFY retransmissions never reach the handler twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from m365pbx.pbx.sip.fields import FieldError, branch_and_method
from m365pbx.pbx.sip.message import SipMessage, SipRequest, SipResponse
from m365pbx.pbx.sip.transport import Address, Origin, SipTransport, TransportError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Timers:
    """RFC 3261 §17.1.1.1 timer values in seconds (T1 = RTT estimate)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def timer_f(self) -> float:
        """How long a non-INVITE client transaction waits for a final response."""
        return 64 * self.t1


class TransactionTimeout(TimeoutError):
    """No final response before Timer F (or the caller's shorter deadline)."""


class TransactionAborted(ConnectionError):
    """The transaction was abandoned (the server was declared unreachable, or shutdown)."""


RequestHandler = Callable[[SipRequest, Origin], SipResponse | None]


def transaction_key(message: SipMessage) -> tuple[str, str]:
    """(branch, CSeq method) of a message; FieldError if the headers do not allow it."""
    headers = message.headers
    branch, method = branch_and_method(headers.get("via") or "", headers.get("cseq") or "")
    if not branch:
        raise FieldError("Via without branch")
    return branch, method


class _ClientTransaction:
    """One request waiting for its final response.

    One timer at a time serves as both Timer E and Timer F (a timer costs a heap entry,
    and thousands of publications each keep a refresh timer in that heap): it fires at the
    next retransmission or at the deadline, whichever comes first.
    """

    def __init__(self, layer: TransactionLayer, data: bytes, timeout: float) -> None:
        self.layer = layer
        self.data = data
        loop = asyncio.get_running_loop()
        self.future: asyncio.Future[SipResponse] = loop.create_future()
        self.interval = layer.timers.t1
        self.proceeding = False
        self.retransmits = not layer.transport.reliable
        self.wait = timeout
        self.deadline = loop.time() + timeout
        self.timer = self._arm(loop, loop.time())

    def _arm(self, loop: asyncio.AbstractEventLoop, now: float) -> asyncio.TimerHandle:
        if self.retransmits and now + self.interval < self.deadline:
            return loop.call_at(now + self.interval, self._retransmit)
        return loop.call_at(self.deadline, self._timeout)

    def _retransmit(self) -> None:
        if self.future.done():
            return
        self.layer.spawn_send(self.data)
        timers = self.layer.timers
        # §17.1.2.2: double up to T2 while Trying; every T2 once Proceeding.
        self.interval = timers.t2 if self.proceeding else min(2 * self.interval, timers.t2)
        loop = asyncio.get_running_loop()
        self.timer = self._arm(loop, loop.time())

    def _timeout(self) -> None:
        self.finish(exception=TransactionTimeout(f"no final response within {self.wait:g} s"))

    def provisional(self) -> None:
        self.proceeding = True

    def finish(
        self, response: SipResponse | None = None, exception: BaseException | None = None
    ) -> None:
        self.timer.cancel()
        if self.future.done():
            return
        if exception is not None:
            self.future.set_exception(exception)
        elif response is not None:
            self.future.set_result(response)


class TransactionLayer:
    """Client and server transactions on one transport towards one server."""

    def __init__(
        self,
        transport: SipTransport,
        server: Address,
        handler: RequestHandler,
        timers: Timers | None = None,
        *,
        on_stray: Callable[[str], None] | None = None,
        on_bad_input: Callable[[str, str], None] | None = None,
    ) -> None:
        self.transport = transport
        self.server = server
        self.handler = handler
        self.timers = timers or Timers()
        self._on_stray = on_stray or (lambda _reason: None)
        self._on_bad_input = on_bad_input or (lambda _reason, _detail: None)
        self._clients: dict[tuple[str, str], _ClientTransaction] = {}
        self._answered: dict[tuple[str, ...], SipResponse | None] = {}
        self._send_tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        """Number of client transactions waiting for a final response."""
        return len(self._clients)

    def spawn_send(self, data: bytes, origin: Origin | None = None) -> None:
        """Send in the background (retransmissions and responses); failures are logged."""
        address = origin.address if origin is not None else self.server
        task = asyncio.get_running_loop().create_task(self._send(data, address, origin))
        self._send_tasks.add(task)
        task.add_done_callback(self._send_tasks.discard)

    async def _send(self, data: bytes, address: Address, origin: Origin | None) -> None:
        try:
            await self.transport.send(data, address, origin)
        except TransportError as exc:
            log.debug("send to %s failed: %s", address, exc)

    async def request(
        self,
        request: SipRequest,
        limit: float | None = None,
        key: tuple[str, str] | None = None,
    ) -> SipResponse:
        """Send `request` to the server and return its final response.

        `key` is its (branch, method) if the caller knows it. Raises TransactionTimeout,
        TransactionAborted or TransportError.
        """
        key = key or transaction_key(request)
        data = request.to_bytes()
        wait = self.timers.timer_f if limit is None else min(limit, self.timers.timer_f)
        transaction = _ClientTransaction(self, data, wait)
        self._clients[key] = transaction
        try:
            await self.transport.send(data, self.server)
            return await transaction.future
        except BaseException:
            transaction.finish(exception=TransactionAborted("cancelled"))
            raise
        finally:
            self._clients.pop(key, None)

    def abort_all(self, reason: str) -> None:
        """Fail every pending client transaction at once with TransactionAborted."""
        for transaction in list(self._clients.values()):
            transaction.finish(exception=TransactionAborted(reason))

    def message_received(self, message: SipMessage, origin: Origin) -> None:
        """Route a response to its client transaction and a request to the handler."""
        try:
            key = transaction_key(message)
        except FieldError as exc:
            self._on_bad_input("bad-header", str(exc))
            return
        if isinstance(message, SipResponse):
            transaction = self._clients.get(key)
            if transaction is None:
                # Late retransmissions after completion (Timer K) land here too.
                self._on_stray("unmatched response")
                return
            if message.is_final:
                transaction.finish(response=message)
            else:
                transaction.provisional()
            return
        # RFC 3261 §17.2.3 matches by branch, sent-by and method; Call-ID and CSeq are added
        # so a peer that reuses branch values cannot get a new request taken for a resend.
        cseq = message.headers.get("cseq") or ""
        self._request_received(message, (*key, message.call_id, cseq), origin)

    def _request_received(self, request: SipRequest, key: tuple[str, ...], origin: Origin) -> None:
        if key in self._answered:
            cached = self._answered[key]
            if cached is not None:
                self.spawn_send(cached.to_bytes(), origin)
            return
        try:
            response = self.handler(request, origin)
        except Exception:  # a handler bug must not take the transport down
            log.exception("request handler failed for %s", request.method)
            response = None
        if response is None:
            return
        self.spawn_send(response.to_bytes(), origin)
        if not self.transport.reliable:
            self._answered[key] = response
            asyncio.get_running_loop().call_later(
                self.timers.timer_f, self._answered.pop, key, None
            )

    async def close(self) -> None:
        """Abort pending transactions and wait for background sends."""
        self.abort_all("shutting down")
        for task in list(self._send_tasks):
            task.cancel()
