"""SIP transports on asyncio: UDP (one socket) and TCP (outgoing connections + a listener).

Both parse what arrives and hand whole messages to a `TransportUser`; anything that does
not parse is reported to `bad_input` and dropped. A TCP stream that turns to garbage is
closed, since it cannot be resynchronised (RFC 3261 §18.3). The TCP listener exists
because a server sends NOTIFY to our Contact address and Kamailio opens a new connection
for it unless told to reuse ours (`tcp_accept_aliases`, off by default). Only the
server's addresses may send to us, and the listener keeps others' connections within
`TcpLimits` (limits.py); what is refused is reported to `refused`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from m365pbx.pbx.sip.limits import DEFAULT_TCP_LIMITS, Admission, PeerFilter, TcpLimits
from m365pbx.pbx.sip.message import SipMessage
from m365pbx.pbx.sip.parser import (
    DEFAULT_LIMITS,
    ParseLimits,
    SipParseError,
    StreamParser,
    parse_datagram,
)

log = logging.getLogger(__name__)

Address = tuple[str, int]


class TransportError(OSError):
    """Sending failed: the transport is closed, or a TCP connection could not be made."""


class ListenError(TransportError):
    """Our own socket cannot be bound (the configured port is taken, say): not the server."""


class TransportUser(Protocol):
    """What a transport reports to: whole messages, bad input and lost connections."""

    def message_received(self, message: SipMessage, origin: Origin) -> None:
        """A parsed message arrived."""

    def bad_input(self, reason: str, detail: str) -> None:
        """Something arrived that is not valid SIP (already dropped)."""

    def refused(self, reason: str, detail: str) -> None:
        """A peer was refused: foreign address, too many connections, too slow."""

    def connection_lost(self, address: Address) -> None:
        """A TCP connection to or from `address` closed."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a message came from; `connection` is the TCP connection to answer on."""

    address: Address
    connection: _TcpConnection | None = None


def outbound_host(server: Address) -> str:
    """The local address the OS would use to reach `server` (no packet is sent)."""
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect(server)
        return str(probe.getsockname()[0])


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, user: TransportUser, limits: ParseLimits, peers: PeerFilter) -> None:
        self._user = user
        self._limits = limits
        self._peers = peers

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        address = (str(addr[0]), int(str(addr[1])))
        if not self._peers.permits(address[0]):
            # Dropped, not answered: a 403 would let spoofed sources aim us at others.
            self._user.refused(
                "foreign-address",
                f"UDP from {address[0]}:{address[1]} (only {self._peers.describe()} may send)",
            )
            return
        if not data.strip(b"\r\n"):
            return  # CRLF keep-alive (RFC 5626 §4.4.1)
        try:
            message = parse_datagram(data, self._limits)
        except SipParseError as exc:
            self._user.bad_input(exc.reason, f"from {address[0]}:{address[1]}: {exc.detail}")
            return
        self._user.message_received(message, Origin(address))

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP socket error: %s", exc)


class SipTransport(ABC):
    """Common interface of the UDP and TCP transports."""

    name = "UDP"
    reliable = False

    def __init__(
        self, user: TransportUser, local: Address, limits: ParseLimits = DEFAULT_LIMITS
    ) -> None:
        self.user = user
        self.requested = local
        self.limits = limits
        self.local: Address = local
        self.peers = PeerFilter()

    @abstractmethod
    async def open(self) -> None:
        """Bind the socket(s); `local` then holds the actual address and port."""

    @abstractmethod
    async def send(self, data: bytes, address: Address, origin: Origin | None = None) -> None:
        """Send one message to `address` (over `origin`'s TCP connection when answering)."""

    @abstractmethod
    async def close(self) -> None:
        """Close every socket."""


class UdpTransport(SipTransport):
    """SIP over one UDP socket."""

    def __init__(
        self, user: TransportUser, local: Address, limits: ParseLimits = DEFAULT_LIMITS
    ) -> None:
        super().__init__(user, local, limits)
        self._transport: asyncio.DatagramTransport | None = None

    async def open(self) -> None:
        """Bind the UDP socket."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self.user, self.limits, self.peers), local_addr=self.requested
        )
        self._transport = transport
        sockname = transport.get_extra_info("sockname")
        self.local = (str(sockname[0]), int(sockname[1]))

    async def send(self, data: bytes, address: Address, origin: Origin | None = None) -> None:
        """Send one datagram."""
        if self._transport is None or self._transport.is_closing():
            raise TransportError("the UDP transport is closed")
        self._transport.sendto(data, address)

    async def close(self) -> None:
        """Close the socket."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None


class _TcpConnection(asyncio.Protocol):
    """One TCP connection; `incoming` ones (others opened them) are held to the limits."""

    def __init__(self, owner: TcpTransport, *, incoming: bool = False) -> None:
        self._owner = owner
        self._parser = StreamParser(owner.limits)
        self.transport: asyncio.Transport | None = None
        self.address: Address = ("", 0)
        self.incoming = incoming
        self._admitted = False
        self._opened_at = 0.0
        self._completed = False  # a whole message has arrived
        self._message_started: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.address = (str(peer[0]), int(peer[1]))
        if self.incoming:
            refusal = self._owner.admission.admit(self.address[0])
            if refusal is not None:
                transport.abort()
                self._owner.user.refused(*refusal)
                return
            self._admitted = True
            self._opened_at = asyncio.get_running_loop().time()
            self._rearm()
        self._owner.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.incoming and not self._admitted:
            return
        try:
            messages = self._parser.feed(data)
        except SipParseError as exc:
            where = f"{self.address[0]}:{self.address[1]}"
            self._owner.user.bad_input(exc.reason, f"TCP from {where}: {exc.detail}")
            self.close()
            return
        if self.incoming:
            if messages:
                self._completed = True
                self._message_started = None
            if not self._parser.pending:
                self._message_started = None
            elif self._message_started is None:
                self._message_started = asyncio.get_running_loop().time()
            self._rearm()
        for message in messages:
            self._owner.user.message_received(message, Origin(self.address, self))

    def _rearm(self) -> None:
        """Keep one timer at the earliest deadline: the first message's, the current one's."""
        limits = self._owner.tcp_limits
        deadlines = []
        if not self._completed:
            deadlines.append((self._opened_at + limits.idle_timeout, "idle-timeout"))
        if self._message_started is not None:
            deadlines.append((self._message_started + limits.message_timeout, "slow-message"))
        if not deadlines:
            self._cancel_timer()
            return
        at, reason = min(deadlines)
        if self._timer is not None and self._timer_at == at:
            return
        self._cancel_timer()
        self._timer_at = at
        self._timer = asyncio.get_running_loop().call_at(at, self._expire, reason)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, reason: str) -> None:
        self._timer = None
        limits = self._owner.tcp_limits
        where = f"{self.address[0]}:{self.address[1]}"
        if reason == "idle-timeout":
            detail = f"TCP from {where}: no whole message within {limits.idle_timeout:g} s"
        else:
            detail = (
                f"TCP from {where}: a message not complete {limits.message_timeout:g} s "
                "after it began"
            )
        self._owner.user.refused(reason, detail)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.incoming and not self._admitted:
            return
        self._cancel_timer()
        if self._admitted:
            self._admitted = False
            self._owner.admission.release(self.address[0])
        self._owner.forget(self)
        self._owner.user.connection_lost(self.address)

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise TransportError(f"TCP connection to {self.address} is closed")
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class TcpTransport(SipTransport):
    """SIP over TCP: connections we open to the server, plus a listener for its NOTIFYs."""

    name = "TCP"
    reliable = True

    def __init__(
        self,
        user: TransportUser,
        local: Address,
        limits: ParseLimits = DEFAULT_LIMITS,
        connect_timeout: float = 5.0,
        tcp_limits: TcpLimits = DEFAULT_TCP_LIMITS,
    ) -> None:
        super().__init__(user, local, limits)
        self.connect_timeout = connect_timeout
        self.tcp_limits = tcp_limits
        self.admission = Admission(tcp_limits, self.peers)
        self.connections: set[_TcpConnection] = set()
        self._outgoing: dict[Address, _TcpConnection] = {}
        self._connecting: dict[Address, asyncio.Future[_TcpConnection]] = {}
        self._server: asyncio.Server | None = None

    def _factory(self, *, incoming: bool = False) -> Callable[[], _TcpConnection]:
        return lambda: _TcpConnection(self, incoming=incoming)

    async def open(self) -> None:
        """Start the listener that receives the server's requests."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._factory(incoming=True), host=self.requested[0], port=self.requested[1]
        )
        sockname = self._server.sockets[0].getsockname()
        self.local = (str(sockname[0]), int(sockname[1]))

    def forget(self, connection: _TcpConnection) -> None:
        """Drop a closed connection from the tables."""
        self.connections.discard(connection)
        for address, known in list(self._outgoing.items()):
            if known is connection:
                del self._outgoing[address]

    async def _connection_to(self, address: Address) -> _TcpConnection:
        known = self._outgoing.get(address)
        if known is not None and known.transport is not None and not known.transport.is_closing():
            return known
        pending = self._connecting.get(address)
        if pending is not None:
            return await asyncio.shield(pending)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_TcpConnection] = loop.create_future()
        self._connecting[address] = future
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    self._factory(),
                    host=address[0],
                    port=address[1],
                    local_addr=(self.local[0], 0),
                ),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            error = TransportError(f"cannot connect to {address[0]}:{address[1]}: {exc}")
            future.set_exception(error)
            future.exception()  # mark retrieved: waiters get it through shield
            raise error from None
        finally:
            self._connecting.pop(address, None)
        self._outgoing[address] = connection
        future.set_result(connection)
        return connection

    async def send(self, data: bytes, address: Address, origin: Origin | None = None) -> None:
        """Write one message, on `origin`'s connection when answering, else to `address`."""
        if self._server is None:
            raise TransportError("the TCP transport is closed")
        if origin is not None and origin.connection is not None:
            origin.connection.write(data)
            return
        connection = await self._connection_to(address)
        connection.write(data)

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for connection in list(self.connections):
            connection.close()
        self.connections.clear()
        self._outgoing.clear()
