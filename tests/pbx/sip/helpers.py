"""Helpers for the Kamailio tests: connections, a simulated phone, waiting for events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from m365pbx.pbx.base import PbxEvent
from m365pbx.pbx.sip import Addressing, SipConnection, SipOptions, UaConfig, UserAgent
from m365pbx.pbx.sip.digest import Credentials, DigestSession
from m365pbx.pbx.sip.fields import parse_name_addr
from m365pbx.pbx.sip.message import SipRequest, SipResponse, response_for
from m365pbx.pbx.sip.publication import Publication
from m365pbx.pbx.sip.subscription import DialogKey, Subscription
from tests.pbx.sip.kamailio import KamailioServer

DOMAIN = "127.0.0.1"
# Generous bounds (about 10x what each step needs): tests never fail on timing.
WAIT = 10.0


def options(server: KamailioServer, **overrides: Any) -> SipOptions:
    """Options for a connection to `server` that notices outages within about a second."""
    base = SipOptions(
        server=("127.0.0.1", server.port),
        addressing=Addressing(DOMAIN),
        keepalive_interval=0.3,
        keepalive_timeout=1.0,
    )
    return replace(base, **overrides)


async def connect(server: KamailioServer, **overrides: Any) -> SipConnection:
    """A started SipConnection to `server`, connected."""
    connection = SipConnection("test-sip", options(server, **overrides))
    await connection.start()
    await wait_until(lambda: connection.status().state.value == "connected")
    return connection


async def wait_until(predicate: Callable[[], bool], within: float = WAIT) -> None:
    """Poll `predicate` until it holds; TimeoutError after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


class EventReader:
    """Reads a connection's events in the background so tests can wait for one."""

    def __init__(self, connection: SipConnection) -> None:
        self.events: list[PbxEvent] = []
        self._iterator: AsyncIterator[PbxEvent] = connection.events()
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for event in self._iterator:
            self.events.append(event)

    async def wait_for(
        self, predicate: Callable[[PbxEvent], bool], within: float = WAIT
    ) -> PbxEvent:
        """The first event (seen so far or arriving) that satisfies `predicate`."""
        await wait_until(lambda: any(predicate(e) for e in self.events), within)
        return next(e for e in self.events if predicate(e))

    async def close(self) -> None:
        """Stop reading."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


DIALOG_INFO = """<?xml version="1.0" encoding="UTF-8"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="{version}" state="full"
  entity="sip:{user}@127.0.0.1">{dialogs}
</dialog-info>
"""
DIALOG = """
 <dialog id="{call}" call-id="{call}@phone" local-tag="lt{call}" direction="{direction}">
  <state>{state}</state>
  <local><identity>sip:{user}@127.0.0.1</identity>
   <target uri="sip:{user}@192.0.2.10:5060">{held}</target></local>
  <remote><identity>sip:caller@example.org</identity></remote>
 </dialog>"""
HELD = '<param pname="+sip.rendering" pvalue="no"/>'


class Phone:
    """A simulated desk phone that PUBLISHes its dialog state (RFC 4235) to the server.

    The bodies are written out by hand here, not built with the code under test.
    """

    def __init__(self, server: KamailioServer, user: str, password: str | None = None) -> None:
        self.user = user
        self.ua = UserAgent(UaConfig(server=("127.0.0.1", server.port)))
        auth = DigestSession(Credentials(user, password)) if password else None
        address = f"sip:{user}@{DOMAIN}"
        self.publication = Publication(
            self.ua,
            address,
            address,
            auth=auth,
            event="dialog",
            content_type="application/dialog-info+xml",
            expires=120,
        )
        self.version = 0

    async def start(self) -> Phone:
        """Open the phone's socket."""
        await self.ua.start()
        return self

    async def call(
        self, state: str | None, *, direction: str = "recipient", held: bool = False
    ) -> None:
        """Publish one call in `state` (early, confirmed, terminated); None: no dialogs."""
        dialogs = ""
        if state is not None:
            dialogs = DIALOG.format(
                call="c1",
                direction=direction,
                state=state,
                user=self.user,
                held=HELD if held else "",
            )
        body = DIALOG_INFO.format(version=self.version, user=self.user, dialogs=dialogs)
        self.version += 1
        self.publication.desired = body.encode()
        outcome = await self.publication.sync()
        assert outcome.ok, outcome.detail
        if state == "terminated":
            # Kamailio quirk (5.6, seen in these tests): after a publication whose dialogs
            # are all terminated it drops the presentity; a modify with that ETag still
            # gets 200 but notifies nobody. Phones publish each new call afresh.
            self.publication.etag = None
            self.publication.published = None

    async def close(self) -> None:
        """Withdraw the publication and close."""
        self.publication.desired = None
        await self.publication.sync()
        await self.ua.close()


class RawWatcher:
    """A bare subscription that keeps every NOTIFY body (for servers that need digest)."""

    def __init__(self, server: KamailioServer, resource: str, user: str, password: str) -> None:
        self.ua = UserAgent(UaConfig(server=("127.0.0.1", server.port)))
        self.registry: dict[DialogKey, Subscription] = {}
        self.bodies: list[bytes] = []
        self.ua.notify_handler = self._route
        self.subscription = Subscription(
            self.ua,
            resource,
            f"sip:{user}@{DOMAIN}",
            "presence",
            "application/pidf+xml",
            self,
            self.registry,
            auth=DigestSession(Credentials(user, password)),
            expires=120,
        )

    def _route(self, request: SipRequest) -> SipResponse:
        tag = parse_name_addr(request.headers.get("to") or "").tag or ""
        found = self.registry.get((request.call_id, tag))
        return found.handle_notify(request) if found else response_for(request, 481)

    def notified(self, subscription: Subscription, content_type: str, body: bytes) -> bool:
        """Keep the body."""
        self.bodies.append(body)
        return True

    def terminated(
        self, subscription: Subscription, reason: str, retry_after: float | None
    ) -> None:
        """Ignored."""

    def bad_notify(self, reason: str, detail: str) -> None:
        """Ignored."""

    async def start(self) -> RawWatcher:
        """Subscribe."""
        await self.ua.start()
        outcome = await self.subscription.subscribe()
        assert outcome.ok, outcome.detail
        return self

    async def close(self) -> None:
        """Unsubscribe and close."""
        await self.subscription.unsubscribe()
        await self.ua.close()
