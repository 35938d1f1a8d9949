"""What a Kamailio presence server shows for many people at once, read the way a
switchboard would: one presence subscription per person, the PIDF of its first NOTIFY
reduced to one word, then the subscription ended. Used by the chaos soak to compare
Kamailio's view with what m365pbx believes it published.

The words are PBX presence values (dnd, away, busy, on-the-phone, meeting), or `online`
where nothing is published (Kamailio then sends a body with a closed tuple, or none).
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

from m365pbx.pbx.sip import UaConfig, UserAgent
from m365pbx.pbx.sip.fields import parse_name_addr
from m365pbx.pbx.sip.message import SipRequest, SipResponse, response_for
from m365pbx.pbx.sip.pidf import NS_RPID
from m365pbx.pbx.sip.subscription import DialogKey, Subscription

DOMAIN = "127.0.0.1"
_WORDS = ("on-the-phone", "meeting", "away", "busy")


def presence_word(body: bytes) -> str:
    """The PBX presence a PIDF body shows: dnd, one of the RPID activities, or online."""
    if not body.strip():
        return "online"
    activities = ET.fromstring(body).iter(f"{{{NS_RPID}}}activities")
    found = {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip()
             for element in activities for child in element}
    if found.get("other") == "dnd":
        return "dnd"
    return next((word for word in _WORDS if word in found), "online")


class PresenceSnapshot:
    """Subscribes to people's presence on one server and keeps the first body of each."""

    def __init__(self, port: int) -> None:
        self.ua = UserAgent(UaConfig(server=("127.0.0.1", port)))
        self.ua.notify_handler = self._route
        self.registry: dict[DialogKey, Subscription] = {}
        self.bodies: dict[str, bytes] = {}
        self._arrived: dict[str, asyncio.Event] = {}

    def _route(self, request: SipRequest) -> SipResponse:
        tag = parse_name_addr(request.headers.get("to") or "").tag or ""
        found = self.registry.get((request.call_id, tag))
        return found.handle_notify(request) if found else response_for(request, 481)

    def notified(self, subscription: Subscription, content_type: str, body: bytes) -> bool:
        """Keep the first body of each person."""
        self.bodies.setdefault(subscription.resource, body)
        event = self._arrived.get(subscription.resource)
        if event is not None:
            event.set()
        return True

    def terminated(self, subscription: Subscription, reason: str,
                   retry_after: float | None) -> None:
        """Ignored: each subscription lives for one NOTIFY."""

    def bad_notify(self, reason: str, detail: str) -> None:
        """Ignored: a body that cannot be read shows as missing."""

    async def read(self, keys: list[str], *, parallel: int = 32,
                   wait: float = 30.0) -> dict[str, str]:
        """Each key's presence word; `missing` where no NOTIFY came within `wait`."""
        await self.ua.start()
        gate = asyncio.Semaphore(parallel)
        try:
            words = await asyncio.gather(*(self._one(key, gate, wait) for key in keys))
        finally:
            await self.ua.close()
        return dict(zip(keys, words, strict=True))

    async def _one(self, key: str, gate: asyncio.Semaphore, wait: float) -> str:
        resource = f"sip:{key}@{DOMAIN}"
        async with gate:
            arrived = self._arrived[resource] = asyncio.Event()
            subscription = Subscription(self.ua, resource, f"sip:soak-reader@{DOMAIN}",
                                        "presence", "application/pidf+xml", self,
                                        self.registry, expires=60)
            outcome = await subscription.subscribe()
            if not outcome.ok:
                return f"missing ({outcome.detail})"
            try:
                await asyncio.wait_for(arrived.wait(), wait)
            except TimeoutError:
                return "missing (no NOTIFY)"
            finally:
                await subscription.unsubscribe()
        return presence_word(self.bodies[resource])
