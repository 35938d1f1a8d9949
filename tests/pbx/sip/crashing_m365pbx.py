"""m365pbx's SIP side in a child process that a test kills with SIGKILL (a crash).

`python -m tests.pbx.sip.crashing_m365pbx DATABASE_URL KEY PORT USER PRESENCE NOTE` builds
the SIP connection through the service wiring, publishes one presence, prints
`published <etag>` and waits to be killed: no withdrawal, no final save.
"""

from __future__ import annotations

import asyncio
import sys

from m365pbx.clock import SystemClock
from m365pbx.config import SipConnection as SipConfig
from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.base import ConnectionState, PbxUser
from m365pbx.pbx.sip import SipConnection
from m365pbx.service.connections import build_connection
from m365pbx.store import SecretBox, Store
from tests.pbx.sip.helpers import wait_until

NAME = "office-sip"


def sip_config(port: int) -> SipConfig:
    """The configuration entry of the SIP connection to a Kamailio on `port`."""
    return SipConfig.model_validate({
        "name": NAME, "kind": "sip", "tenant": "contoso",
        "settings": {"server": f"127.0.0.1:{port}", "domain": "127.0.0.1"},
    })


def user(name: str) -> PbxUser:
    """A PBX user as the users file gives them (the extension makes the address)."""
    return PbxUser(name, {"extension": name, "cn": name.title()})


async def started(store: Store, port: int) -> SipConnection:
    """A SIP connection built as the service builds it, started and connected."""
    connection = build_connection(sip_config(port), SystemClock(), store)
    assert isinstance(connection, SipConnection)
    await connection.start()
    await wait_until(lambda: connection.status().state is ConnectionState.CONNECTED)
    return connection


async def main(url: str, key: str, port: int, name: str, presence: str, note: str) -> None:
    """Publish `presence` for `name`, say so, and wait to be killed."""
    connection = await started(Store.open(url, SecretBox([key])), port)
    await connection.set_presence(user(name), PbxPresence(presence), note)
    print("published", connection.publication_etags()[name], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    url, key, port, name, presence, note = sys.argv[1:]
    asyncio.run(main(url, key, int(port), name, presence, note))
