"""A scripted SIP peer on a loopback UDP port for unit tests (answers what the test says)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from m365pbx.pbx.sip.message import SipRequest, SipResponse, response_for
from m365pbx.pbx.sip.parser import parse_datagram

Responder = Callable[[SipRequest], list[SipResponse] | SipResponse | None]


def answer(request: SipRequest, status: int, reason: str = "", **headers: str) -> SipResponse:
    """A response to `request` with a To tag and extra headers (underscores → dashes)."""
    response = response_for(request, status, reason or None)
    to_value = response.headers.get("to") or ""
    if status > 100 and ";tag=" not in to_value:
        response.headers.set("To", f"{to_value};tag=server")
    for name, value in headers.items():
        response.headers.add(name.replace("_", "-"), value)
    return response


@dataclass
class FakeServer(asyncio.DatagramProtocol):
    """Receives requests, records them, answers with `responder`; can send raw datagrams."""

    responder: Responder = lambda request: answer(request, 200)
    requests: list[SipRequest] = field(default_factory=list)
    responses: list[SipResponse] = field(default_factory=list)
    client: tuple[str, int] | None = None
    transport: asyncio.DatagramTransport | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def address(self) -> tuple[str, int]:
        """Where the fake server listens."""
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        """Record and answer a request, or record a response to something we sent."""
        self.client = (str(addr[0]), int(str(addr[1])))
        message = parse_datagram(data)
        self.arrived.set()
        if isinstance(message, SipResponse):
            self.responses.append(message)
            return
        self.requests.append(message)
        result = self.responder(message)
        for response in [result] if isinstance(result, SipResponse) else result or []:
            self.send(response.to_bytes())

    def send(self, data: bytes, to: tuple[str, int] | None = None) -> None:
        """Send a raw datagram to the client (or `to`)."""
        assert self.transport is not None
        target = to or self.client
        assert target is not None
        self.transport.sendto(data, target)

    def of(self, method: str) -> list[SipRequest]:
        """The requests received with this method."""
        return [request for request in self.requests if request.method == method]

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until `predicate()` is true (polling as messages arrive)."""
        deadline = asyncio.get_running_loop().time() + within
        while not predicate():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError("condition not met in time")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), min(remaining, 0.05))

    def close(self) -> None:
        """Close the socket."""
        if self.transport is not None:
            self.transport.close()


async def start_fake_server(responder: Responder | None = None) -> FakeServer:
    """A FakeServer listening on 127.0.0.1 at a free port."""
    loop = asyncio.get_running_loop()
    server = FakeServer() if responder is None else FakeServer(responder)
    transport, _ = await loop.create_datagram_endpoint(lambda: server, local_addr=("127.0.0.1", 0))
    server.transport = transport
    return server


class EtagServer:
    """A presence server's PUBLISH handling in miniature: live ETags, 412 for unknown ones."""

    def __init__(self) -> None:
        self.live: dict[str, bytes] = {}
        self.numbers = itertools.count(1)

    def __call__(self, request: SipRequest) -> SipResponse:
        """Answer one request (anything but PUBLISH gets 200)."""
        if request.method != "PUBLISH":
            return answer(request, 200)
        match = request.headers.get("sip-if-match")
        body = request.body
        if match is not None:
            if match not in self.live:
                return answer(request, 412, "Conditional Request Failed")
            old = self.live.pop(match)
            body = body or old
        if request.headers.get("expires") == "0":
            return answer(request, 200, SIP_ETag="gone", Expires="0")
        etag = f"e{next(self.numbers)}"
        self.live[etag] = body
        # Granted as asked, as Kamailio does between its min and max expires.
        return answer(request, 200, SIP_ETag=etag, Expires=request.headers.get("expires") or "600")
