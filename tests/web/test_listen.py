"""Answers leave at once: accepted connections have Nagle's algorithm off."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from m365pbx.web.listen import listening_socket
from m365sim.server import listening_socket as sim_listening_socket

Listen = Callable[[str, int], socket.socket]


@pytest.mark.parametrize("listen", [listening_socket, sim_listening_socket],
                         ids=["m365pbx", "m365sim"])
async def test_accepted_connections_send_without_waiting_for_acks(listen: Listen) -> None:
    sock = listen("127.0.0.1", 0)
    nodelay: list[int] = []

    async def accepted(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw = writer.get_extra_info("socket")
        nodelay.append(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=sock)
    async with server:
        _reader, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        await _reader.read()
        writer.close()
    assert nodelay == [1]


def test_a_taken_port_is_named_in_the_error() -> None:
    first = listening_socket("127.0.0.1", 0)
    first.listen()
    port = first.getsockname()[1]
    try:
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1 port {port}"):
            listening_socket("127.0.0.1", port)
    finally:
        first.close()
