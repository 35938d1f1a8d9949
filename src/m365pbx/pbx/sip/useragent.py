"""A small SIP user agent: one transport, transactions, digest retries, incoming requests.

Everything is sent to one server (the presence server acts as outbound proxy for every
request, RFC 3261 §8.1.2); in-dialog requests carry the route set learned from
Record-Route. Incoming NOTIFYs go to `notify_handler`; OPTIONS is answered 200; other
methods get 405 (RFC 3261 §8.2.1).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from m365pbx.pbx.sip.counters import BadInputCounter
from m365pbx.pbx.sip.digest import DigestError, DigestSession, best_challenge
from m365pbx.pbx.sip.fields import FieldError, parse_name_addr
from m365pbx.pbx.sip.limits import DEFAULT_TCP_LIMITS, TcpLimits
from m365pbx.pbx.sip.message import Headers, SipMessage, SipRequest, SipResponse, response_for
from m365pbx.pbx.sip.parser import DEFAULT_LIMITS, ParseLimits
from m365pbx.pbx.sip.transactions import Timers, TransactionLayer
from m365pbx.pbx.sip.transport import (
    Address,
    ListenError,
    Origin,
    SipTransport,
    TcpTransport,
    TransportError,
    UdpTransport,
    outbound_host,
)

log = logging.getLogger(__name__)

ALLOWED_METHODS = "NOTIFY, OPTIONS"


def random_token(bits: int = 64) -> str:
    """A random hex token for tags, Call-IDs and branches."""
    return secrets.token_hex(bits // 8)


def new_branch() -> str:
    """A fresh Via branch (RFC 3261 §8.1.1.7: starts with the magic cookie)."""
    return f"z9hG4bK{random_token(80)}"


def host_for_uri(host: str) -> str:
    """`host` as it appears in a URI or Via: IPv6 literals in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(frozen=True, slots=True)
class UaConfig:
    """Where the server is, how to reach it and the timers to use."""

    server: Address
    transport: Literal["udp", "tcp"] = "udp"
    local_host: str | None = None
    local_port: int = 0
    timers: Timers = field(default_factory=Timers)
    user_agent: str = "m365pbx"
    limits: ParseLimits = DEFAULT_LIMITS
    tcp_limits: TcpLimits = DEFAULT_TCP_LIMITS


@dataclass(slots=True)
class Leg:
    """The identifiers of one request sequence: a dialog, or a publication's Call-ID/CSeq."""

    local_uri: str
    remote_uri: str
    target: str
    call_id: str = field(default_factory=lambda: random_token(96))
    local_tag: str = field(default_factory=random_token)
    remote_tag: str | None = None
    cseq: int = 0
    route: list[str] = field(default_factory=list)

    def next_cseq(self) -> int:
        """The CSeq number for the next request (RFC 3261 §12.2.1.1: one higher each time)."""
        self.cseq += 1
        return self.cseq


class BadCredentials(Exception):
    """Digest authentication failed: credentials refused, none configured, or bad challenge."""


NotifyHandler = Callable[[SipRequest], SipResponse]


class UserAgent:
    """Sends requests with digest retries and answers incoming requests."""

    def __init__(
        self,
        config: UaConfig,
        counter: BadInputCounter | None = None,
        *,
        max_in_flight: int = 64,
        refusals: BadInputCounter | None = None,
    ) -> None:
        self.config = config
        # Bounds the requests in flight so a burst (2,000 people at once) does not
        # overflow the server's socket buffer and turn into retransmission storms.
        self._slots = asyncio.Semaphore(max_in_flight)
        self.counter = counter or BadInputCounter()
        self.refusals = refusals or BadInputCounter(what="refused SIP peer", level=logging.WARNING)
        self.notify_handler: NotifyHandler = lambda request: response_for(request, 481)
        self.on_connection_lost: Callable[[], None] = lambda: None
        self.stray_responses = 0
        self.opened = False
        # The real local address is known once the server's name is resolved (open()).
        local = (config.local_host or "0.0.0.0", config.local_port)  # noqa: S104
        transport: SipTransport
        if config.transport == "tcp":
            transport = TcpTransport(self, local, config.limits, tcp_limits=config.tcp_limits)
        else:
            transport = UdpTransport(self, local, config.limits)
        self.transport = transport
        self.layer = TransactionLayer(
            transport,
            config.server,
            self._handle_request,
            config.timers,
            on_stray=self._stray,
            on_bad_input=self.counter.record,
        )

    async def start(self) -> None:
        """Open the transport, or leave it for `open()` to retry if the name does not resolve."""
        try:
            await self.open()
        except TransportError as exc:
            log.warning("%s", exc)

    async def open(self) -> None:
        """Resolve the server (A/AAAA, no SRV) and bind the transport on the outbound address.

        Resolved once, without blocking the loop, so `sendto` never resolves names itself;
        from then on only the resolved addresses may send to us. TransportError if the
        name does not resolve or the socket cannot be bound.
        """
        if self.opened:
            return
        host, port = self.config.server
        loop = asyncio.get_running_loop()
        try:
            found = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            address = (str(found[0][4][0]), port)
            self.transport.peers.allow({str(entry[4][0]) for entry in found})
            local_host = self.config.local_host or outbound_host(address)
        except OSError as exc:
            raise TransportError(f"cannot reach {host}:{port}: {exc}") from None
        self.transport.requested = (local_host, self.config.local_port)
        try:
            await self.transport.open()
        except OSError as exc:
            where = f"{host_for_uri(local_host)}:{self.config.local_port}"
            raise ListenError(
                f"cannot listen on {where} ({self.transport.name}): {exc.strerror or exc}"
            ) from None
        self.layer.server = address
        self.opened = True

    async def close(self) -> None:
        """Abort pending transactions and close the transport."""
        await self.layer.close()
        await self.transport.close()
        self.opened = False

    @property
    def contact(self) -> str:
        """Our Contact header value."""
        host, port = self.transport.local
        suffix = ";transport=tcp" if self.transport.reliable else ""
        return f"<sip:m365pbx@{host_for_uri(host)}:{port}{suffix}>"

    def _via(self, branch: str) -> str:
        host, port = self.transport.local
        return f"SIP/2.0/{self.transport.name} {host_for_uri(host)}:{port};rport;branch={branch}"

    def build(
        self,
        leg: Leg,
        method: str,
        extra: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
        *,
        branch: str | None = None,
    ) -> SipRequest:
        """A request on `leg` with a fresh Via branch (or `branch`) and the next CSeq."""
        to_tag = f";tag={leg.remote_tag}" if leg.remote_tag else ""
        # One list, not one add() per field: this runs for every request sent.
        items = [
            ("Via", self._via(branch or new_branch())),
            ("Max-Forwards", "70"),
            *(("Route", route) for route in leg.route),
            ("From", f"<{leg.local_uri}>;tag={leg.local_tag}"),
            ("To", f"<{leg.remote_uri}>{to_tag}"),
            ("Call-ID", leg.call_id),
            ("CSeq", f"{leg.next_cseq()} {method}"),
            ("Contact", self.contact),
            ("User-Agent", self.config.user_agent),
            *extra,
        ]
        if body and content_type:
            items.append(("Content-Type", content_type))
        return SipRequest(method, leg.target, Headers(items), body)

    async def send(
        self,
        leg: Leg,
        method: str,
        extra: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
        *,
        auth: DigestSession | None = None,
        limit: float | None = None,
        limited: bool = True,
    ) -> SipResponse:
        """Send a request and return the final response, answering digest challenges.

        A fresh challenge is answered once; a second 401/407 after that (unless the
        server says `stale=true`) raises BadCredentials, as does a challenge when no
        credentials are configured. Transport and timeout errors propagate.
        """
        extra = list(extra)
        answered_fresh = False
        stale_retries = 0
        while True:
            branch = new_branch()
            request = self.build(leg, method, extra, body, content_type, branch=branch)
            if auth is not None:
                answer = auth.header(method, leg.target, body)
                if answer is not None:
                    request.headers.add(*answer)
            key = (branch, method)  # known: the transaction layer need not parse it back
            if limited:
                async with self._slots:
                    response = await self.layer.request(request, limit, key=key)
            else:
                response = await self.layer.request(request, limit, key=key)
            if response.status not in (401, 407):
                return response
            if auth is None:
                raise BadCredentials(f"the server asks for credentials ({response.status})")
            name = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
            try:
                challenge = best_challenge(
                    response.headers.get_all(name), proxy=response.status == 407
                )
            except DigestError as exc:
                raise BadCredentials(f"cannot answer the challenge: {exc}") from None
            if answered_fresh and not (challenge.stale and stale_retries < 1):
                raise BadCredentials(
                    f"credentials of {auth.credentials.username!r} refused ({response.status})"
                )
            if answered_fresh:
                stale_retries += 1
            answered_fresh = True
            auth.accept(challenge)

    # TransportUser --------------------------------------------------------------------

    def message_received(self, message: SipMessage, origin: Origin) -> None:
        """Pass a parsed message to the transaction layer."""
        self.layer.message_received(message, origin)

    def bad_input(self, reason: str, detail: str) -> None:
        """Count input the transport could not parse."""
        self.counter.record(reason, detail)

    def refused(self, reason: str, detail: str) -> None:
        """Count (and log, sparingly) a peer the transport refused."""
        self.refusals.record(reason, detail)

    def connection_lost(self, address: Address) -> None:
        """Our TCP connection to the server closed: it may have restarted."""
        # Connections the server opened to deliver NOTIFYs close when idle; ignore those.
        if address == self.layer.server:
            self.on_connection_lost()

    def _stray(self, reason: str) -> None:
        self.stray_responses += 1

    def _handle_request(self, request: SipRequest, origin: Origin) -> SipResponse | None:
        if request.method == "ACK":
            return None
        if request.method == "NOTIFY":
            response = self.notify_handler(request)
        elif request.method == "OPTIONS":
            response = response_for(request, 200, extra=[("Allow", ALLOWED_METHODS)])
        else:
            response = response_for(request, 405, extra=[("Allow", ALLOWED_METHODS)])
        return _with_to_tag(response)


def _with_to_tag(response: SipResponse) -> SipResponse:
    # RFC 3261 §8.2.6.2: a response to a request without To tag gets one.
    to_value = response.headers.get("to")
    if to_value is None:
        return response
    try:
        address = parse_name_addr(to_value)
    except FieldError:
        return response
    if address.tag is None:
        response.headers.set("To", f"{to_value};tag={random_token()}")
    return response
