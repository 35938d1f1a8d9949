"""Building m365pbx's AMI client and Asterisk connection against a test server."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from m365pbx.pbx.asterisk import AmiClient, AmiOptions, AsteriskConnection, AsteriskOptions
from m365pbx.pbx.sip.retry import Backoff
from tests.pbx.asterisk.server import AMI_SECRET, AMI_USER, AsteriskServer

FAST = Backoff(initial=0.2, maximum=1.0)


def ami_options(server: AsteriskServer, user: str = AMI_USER, secret: str = AMI_SECRET,
                **overrides: object) -> AmiOptions:
    """AMI options for the server, reconnecting quickly (tests restart Asterisk)."""
    values: dict[str, object] = {"host": "127.0.0.1", "port": server.ami_port,
                                 "username": user, "secret": secret, "backoff": FAST}
    values.update(overrides)
    return AmiOptions(**values)  # type: ignore[arg-type]


def client_for(server: AsteriskServer, **kwargs: object) -> AmiClient:
    """An AMI client (not started)."""
    return AmiClient(ami_options(server, **kwargs))  # type: ignore[arg-type]


def connection_for(server: AsteriskServer, user: str = AMI_USER, secret: str = AMI_SECRET,
                   *, port: int | None = None, tls: ssl.SSLContext | None = None,
                   **options: object) -> AsteriskConnection:
    """An Asterisk connection (not started); `port` and `tls` for the AMI over TLS."""
    ami = ami_options(server, user, secret, tls=tls, port=port or server.ami_port)
    return AsteriskConnection("office-asterisk", AsteriskOptions(
        ami, **options))  # type: ignore[arg-type]


async def until(check: Callable[[], bool], within: float = 30.0) -> None:
    """Wait until `check()` holds (real time; the AMI is real)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            raise AssertionError("the expected state was not reached in time")
        await asyncio.sleep(0.02)
