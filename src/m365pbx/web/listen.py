"""The listening socket of m365pbx's HTTP server (webhooks, presence API, health)."""

from __future__ import annotations

import socket


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for `host`:`port`; the error names the address when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # asyncio sets TCP_NODELAY on accepted sockets only when their proto is IPPROTO_TCP
    # (base_events._set_nodelay); with proto 0, Nagle held each JSON body back until the
    # client's delayed ACK: about 40 ms added to every answer.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host} port {port}: {exc.strerror}") from exc
    return sock
