"""The SIP listener against hostile peers, on real sockets with a real Kamailio.

Idle and slow TCP connections are closed, connection caps hold, only the server's
addresses may send requests, refusals are counted in the status and logged sparingly,
and the listening port comes from the configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import replace

import pytest
from pydantic import ValidationError

from m365pbx.config.connections import SipSettings
from m365pbx.core.presence import LineState
from m365pbx.pbx.base import ConnectionState, LineStateEvent, PbxEvent, PbxUser
from m365pbx.pbx.sip import SipConnection, SipOptions
from m365pbx.pbx.sip.limits import TcpLimits
from m365pbx.pbx.sip.message import SipMessage
from m365pbx.pbx.sip.transport import Origin, TcpTransport
from tests.pbx.sip.helpers import (
    DIALOG,
    DIALOG_INFO,
    EventReader,
    Phone,
    connect,
    options,
    wait_until,
)
from tests.pbx.sip.kamailio import KamailioServer, free_port
from tests.pbx.sip.test_auth_and_bad_input import notify

FOREIGN = "127.0.0.2"  # another loopback address: a host that is not the server


def person(name: str) -> PbxUser:
    """A PBX user whose SIP address is sip:<name>@127.0.0.1."""
    return PbxUser(name, {"extension": name})


def on_the_phone(event: PbxEvent) -> bool:
    """The event that a real call at the phone produces."""
    return isinstance(event, LineStateEvent) and event.state is LineState.ON_THE_PHONE


def closed(sock: socket.socket) -> bool:
    """Whether the other side closed `sock` (EOF or reset), without blocking."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


@contextlib.contextmanager
def sockets() -> Iterator[list[socket.socket]]:
    """A list to put client sockets in; all closed at the end."""
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


async def dial(address: tuple[str, int], source: str = "127.0.0.1") -> socket.socket:
    """A non-blocking TCP connection to `address` from the loopback address `source`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.bind((source, 0))
    await asyncio.get_running_loop().sock_connect(sock, address)
    return sock


async def dial_many(count: int, address: tuple[str, int], source: str = "127.0.0.1") -> list[
    socket.socket
]:
    """`count` connections, one after the other (the listener accepts as they come)."""
    return [await dial(address, source) for _ in range(count)]


def answered(sock: socket.socket) -> bool:
    """Whether a SIP response is waiting to be read on `sock`."""
    try:
        return sock.recv(4096, socket.MSG_PEEK | socket.MSG_DONTWAIT).startswith(b"SIP/2.0")
    except BlockingIOError:
        return False


def options_request(number: int) -> bytes:
    """A complete, valid OPTIONS request."""
    return (
        "OPTIONS sip:m365pbx@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKslow{number}\r\n"
        "From: <sip:slow@127.0.0.1>;tag=s1\r\nTo: <sip:m365pbx@127.0.0.1>\r\n"
        f"Call-ID: slow-{number}\r\nCSeq: {number} OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def trickle(sock: socket.socket, data: bytes, pause: float = 0.05) -> None:
    """Send `data` one byte at a time until it is all sent or the peer closes."""
    for index in range(len(data)):
        if closed(sock):
            return
        try:
            sock.send(data[index : index + 1])
        except OSError:
            return
        await asyncio.sleep(pause)


async def test_idle_connections_are_closed_and_the_servers_notify_still_arrives(
    kamailio: KamailioServer,
) -> None:
    limits = TcpLimits(idle_timeout=0.5, max_per_peer=500, max_total=500)
    connection = await connect(kamailio, transport="tcp", tcp_limits=limits)
    reader = EventReader(connection)
    phone = await Phone(kamailio, "ida").start()
    listener = connection._ua.transport.local
    try:
        with sockets() as idle:
            idle.extend(await dial_many(200, listener))
            await wait_until(lambda: all(closed(sock) for sock in idle))
            assert connection.status().refused.get("idle-timeout", 0) == 200
        # Kamailio's own NOTIFY connection is not disturbed by any of this.
        await connection.watch([person("ida")])
        await phone.call("confirmed")
        await reader.wait_for(on_the_phone)
        assert connection.status().state is ConnectionState.CONNECTED
    finally:
        await phone.close()
        await reader.close()
        await connection.stop()


async def test_a_slow_sender_is_closed_before_its_message_completes(
    kamailio: KamailioServer,
) -> None:
    # The idle timeout is long: what closes these is the deadline of each message.
    limits = TcpLimits(idle_timeout=60.0, message_timeout=0.5)
    connection = await connect(kamailio, transport="tcp", tcp_limits=limits)
    listener = connection._ua.transport.local
    try:
        with sockets() as slow:
            slow.extend(await dial_many(2, listener))
            # The second first completes a message in time, then starts trickling.
            slow[1].send(options_request(1))
            await wait_until(lambda: answered(slow[1]))
            slow[1].recv(4096)
            # At 20 bytes a second each message would take about 12 s to arrive.
            await asyncio.gather(*(trickle(sock, options_request(2)) for sock in slow))
            await wait_until(lambda: all(closed(sock) for sock in slow))
        assert connection.status().refused.get("slow-message", 0) == 2
    finally:
        await connection.stop()


async def test_connections_per_peer_are_capped_and_refusals_logged_sparingly(
    kamailio: KamailioServer, caplog: pytest.LogCaptureFixture
) -> None:
    limits = TcpLimits(max_per_peer=5, max_total=100)
    connection = await connect(kamailio, transport="tcp", tcp_limits=limits)
    listener = connection._ua.transport.local
    caplog.set_level(logging.WARNING, logger="m365pbx.pbx.sip")
    try:
        with sockets() as kept, sockets() as refused:
            kept.extend(await dial_many(5, listener))
            tcp = connection._ua.transport
            assert isinstance(tcp, TcpTransport)
            await wait_until(lambda: len(tcp.connections) >= 6)
            refused.extend(await dial_many(50, listener))
            await wait_until(lambda: all(closed(sock) for sock in refused))
            assert not any(closed(sock) for sock in kept)
            # The ones kept still work.
            kept[0].send(options_request(7))
            await wait_until(lambda: answered(kept[0]))
        assert connection.status().refused.get("too-many-from-peer", 0) == 50
        lines = [r for r in caplog.records if "too-many-from-peer" in r.getMessage()]
        assert 1 <= len(lines) <= 2
        assert connection.status().state is ConnectionState.CONNECTED
    finally:
        await connection.stop()


class _Recorder:
    """A TransportUser that keeps what the transport reports."""

    def __init__(self) -> None:
        self.refusals: list[str] = []

    def message_received(self, message: SipMessage, origin: Origin) -> None:
        """Ignored."""

    def bad_input(self, reason: str, detail: str) -> None:
        """Ignored."""

    def refused(self, reason: str, detail: str) -> None:
        """Keep the reason."""
        self.refusals.append(reason)

    def connection_lost(self, address: tuple[str, int]) -> None:
        """Ignored."""


async def test_connections_in_all_are_capped() -> None:
    user = _Recorder()
    limits = TcpLimits(max_per_peer=3, max_total=5)
    transport = TcpTransport(user, ("127.0.0.1", 0), tcp_limits=limits)
    await transport.open()
    try:
        with sockets() as first, sockets() as second:
            first.extend(await dial_many(3, transport.local, "127.0.0.3"))
            await wait_until(lambda: len(transport.connections) == 3)
            second.extend(await dial_many(3, transport.local, "127.0.0.4"))
            await wait_until(lambda: user.refusals == ["too-many-connections"])
            assert sum(closed(sock) for sock in second) == 1
            assert len(transport.connections) == 5
            for sock in first:
                sock.close()
            await wait_until(lambda: len(transport.connections) == 2)
            # Room again once others left.
            second.append(await dial(transport.local, "127.0.0.4"))
            await wait_until(lambda: len(transport.connections) == 3)
            assert user.refusals == ["too-many-connections"]
    finally:
        await transport.close()


def confirmed_call(user: str) -> bytes:
    """A dialog-info body with one confirmed call of `user`."""
    dialogs = DIALOG.format(call="f1", direction="recipient", state="confirmed", user=user,
                            held="")
    return DIALOG_INFO.format(version=50, user=user, dialogs=dialogs).encode()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_notify_from_a_foreign_address_is_refused(
    kamailio: KamailioServer, transport: str
) -> None:
    name = f"fay-{transport}"
    # The server by name: its resolved addresses are the ones allowed.
    by_name = replace(options(kamailio, transport=transport), server=("localhost", kamailio.port))
    connection = SipConnection("by-name", by_name)
    await connection.start()
    await wait_until(lambda: connection.status().state is ConnectionState.CONNECTED)
    reader = EventReader(connection)
    phone = await Phone(kamailio, name).start()
    try:
        await connection.watch([person(name)])
        subscription = connection._people[name].subscriptions["dialog"]
        # The server's first NOTIFY has arrived (it may come after the 200).
        await wait_until(lambda: subscription.remote_cseq is not None)
        before = subscription.remote_cseq
        forged = notify(subscription.leg.call_id, subscription.leg.local_tag,
                        subscription.leg.remote_tag or "", (before or 1) + 1, "dialog",
                        confirmed_call(name)).replace(b"paul", name.encode())
        listener = connection._ua.transport.local
        if transport == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind((FOREIGN, 0))
                sock.sendto(forged, listener)
                await wait_until(lambda: connection.status().refused.get("foreign-address", 0) == 1)
        else:
            with sockets() as foreign:
                foreign.append(await dial(listener, FOREIGN))
                with contextlib.suppress(OSError):
                    foreign[0].send(forged)
                await wait_until(lambda: closed(foreign[0]))
                assert connection.status().refused.get("foreign-address", 0) == 1
        assert subscription.remote_cseq == before
        assert not any(on_the_phone(event) for event in reader.events)
        # The server's own NOTIFY still applies.
        await phone.call("confirmed")
        await reader.wait_for(on_the_phone)
        assert connection.status().state is ConnectionState.CONNECTED
    finally:
        await phone.close()
        await reader.close()
        await connection.stop()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_the_configured_listening_port_is_used(
    kamailio: KamailioServer, transport: str
) -> None:
    port = free_port()
    settings = SipSettings.model_validate({
        "server": f"127.0.0.1:{kamailio.port}",
        "transport": transport,
        "domain": "127.0.0.1",
        "listen_port": port,
    })
    options = SipOptions.from_settings(settings, keepalive_interval=0.3, keepalive_timeout=1.0)
    assert options.local_port == port
    connection = SipConnection("port-test", options)
    await connection.start()
    reader = EventReader(connection)
    name = f"gil-{transport}"
    phone = await Phone(kamailio, name).start()
    try:
        await wait_until(lambda: connection.status().state is ConnectionState.CONNECTED)
        assert connection._ua.transport.local == ("127.0.0.1", port)
        assert f":{port}" in connection._ua.contact
        await connection.watch([person(name)])
        await phone.call("confirmed")
        await reader.wait_for(on_the_phone)
    finally:
        await phone.close()
        await reader.close()
        await connection.stop()


def test_a_listening_port_out_of_range_is_refused() -> None:
    base = {"server": "pbx.example.com", "domain": "example.com"}
    assert SipSettings.model_validate(base).listen_port == 0
    for wrong in (-1, 65_536):
        with pytest.raises(ValidationError, match="listen_port"):
            SipSettings.model_validate({**base, "listen_port": wrong})


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_listening_port_already_taken_is_said_as_such(
    kamailio: KamailioServer, transport: str
) -> None:
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind(("127.0.0.1", 0))
        if transport == "tcp":
            taken.listen()
        port = taken.getsockname()[1]
        connection = SipConnection(
            "taken", options(kamailio, transport=transport, local_port=port)
        )
        await connection.start()
        try:
            await wait_until(lambda: connection.status().state is ConnectionState.DEGRADED)
            error = connection.status().last_error or ""
            assert f"cannot listen on 127.0.0.1:{port} ({transport.upper()})" in error
            assert "does not answer" not in error  # the server is not to blame
        finally:
            await connection.stop()
