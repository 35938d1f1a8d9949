"""One event publication of one presentity (RFC 3903), kept at exactly one ETag.

The server aggregates every live publication of a presentity, and a second initial
PUBLISH creates a second publication whose note may win (RFC 3903 section 4),
so a Publication always modifies, refreshes and removes through `SIP-If-Match`:
- initial: body, no SIP-If-Match → 2xx with SIP-ETag (kept);
- refresh before expiry: SIP-If-Match, no body; the ETag changes on every refresh;
- modify: SIP-If-Match + new body; remove: SIP-If-Match + Expires: 0;
- 412 (server lost or expired our ETag): drop the ETag, publish the full body afresh;
- an adopted ETag (taken over from before a restart) that the server refuses in any way
  is dropped the same way;
- 423: retry with the server's Min-Expires;
- a 412 to an adopted ETag may mean the previous process changed the publication after
  it saved the ETag (killed before its next save): that publication lives on, and nobody can
  modify or remove it without its ETag. The server shows, of several publications with our
  tuple id, only the one sent last (Kamailio's presence_xml), so until it must have
  expired (`expires` from now) "no publication" is shown by a publication of our own that
  says nothing (`cover`: an open tuple, no activity) instead of by a removal.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum

from m365pbx.pbx.sip.digest import DigestSession
from m365pbx.pbx.sip.fields import parse_expires
from m365pbx.pbx.sip.message import SipResponse
from m365pbx.pbx.sip.outcome import Outcome, OutcomeKind, from_exception, from_response, ok
from m365pbx.pbx.sip.pidf import PIDF_TYPE
from m365pbx.pbx.sip.transactions import TransactionAborted
from m365pbx.pbx.sip.transport import TransportError
from m365pbx.pbx.sip.useragent import BadCredentials, Leg, UserAgent

_SEND_ERRORS = (TimeoutError, TransactionAborted, TransportError, BadCredentials)


class Mode(StrEnum):
    """What a sync should do when the server already holds the wanted body."""

    SYNC = "sync"  # nothing
    REFRESH = "refresh"  # extend it (SIP-If-Match, no body)
    REASSERT = "reassert"  # send the body again (after a server restart)


class Publication:
    """The publication of one presentity for one event package."""

    def __init__(
        self,
        ua: UserAgent,
        presentity: str,
        sender: str,
        *,
        auth: DigestSession | None = None,
        expires: int = 3600,
        event: str = "presence",
        content_type: str = PIDF_TYPE,
        limit: float | None = None,
        cover: bytes | None = None,
    ) -> None:
        self.ua = ua
        self.presentity = presentity
        self.event = event
        self.content_type = content_type
        self.auth = auth
        self.expires = expires
        self.limit = limit
        # RFC 3903 §4 leaves Call-ID/CSeq free; one leg per publication keeps CSeq rising.
        self.leg = Leg(local_uri=sender, remote_uri=presentity, target=presentity)
        self.desired: bytes | None = None
        self.published: bytes | None = None
        self.etag: str | None = None
        self.granted = 0
        self.grants = 0  # 2xx answers so far: each one starts the granted interval anew
        self.adopted = False  # the ETag comes from an earlier run, not from an answer yet
        self.lost = 0  # times the server answered 412 to an ETag it had given us
        # Shows "nothing set" over a publication of ours whose ETag was lost, until then.
        self.cover = cover
        self.cover_until = 0.0  # the loop's clock; 0: nothing to hide
        self._lock = asyncio.Lock()

    @property
    def active(self) -> bool:
        """True while the server holds a publication of ours (we know its ETag)."""
        return self.etag is not None

    async def sync(self, mode: Mode = Mode.SYNC) -> Outcome:
        """Bring the server in line with `desired` (None: no publication)."""
        async with self._lock:
            try:
                if self.desired is None:
                    return await self._remove(mode)
                return await self._put(self.desired, mode)
            except _SEND_ERRORS as exc:
                return from_exception(exc, f"PUBLISH {self.presentity}")

    async def keep(self) -> Outcome:
        """Refresh a taken-over publication whose body is not known here (SIP-If-Match, no
        body): it lives on as it is until someone sets the person's presence again."""
        async with self._lock:
            if self.etag is None:
                return ok()
            try:
                response = await self._send([("Expires", str(self.expires))])
            except _SEND_ERRORS as exc:
                return from_exception(exc, f"PUBLISH {self.presentity} (refresh)")
            if response.is_success:
                return ok(self.granted)
            if response.status == 412 or self.adopted:
                if response.status == 412:
                    self._suspect()
                self._forget()  # the server no longer holds it: nothing left to keep
                return ok()
            return from_response(response, f"PUBLISH {self.presentity} (refresh)")

    async def _send(self, extra: list[tuple[str, str]], body: bytes = b"") -> SipResponse:
        headers = [("Event", self.event), *extra]
        if self.etag is not None:
            headers.append(("SIP-If-Match", self.etag))
        response = await self.ua.send(
            self.leg,
            "PUBLISH",
            headers,
            body,
            self.content_type if body else None,
            auth=self.auth,
            limit=self.limit,
        )
        if response.is_success:
            self.grants += 1
            self.adopted = False
            self.etag = response.headers.get("sip-etag") or None
            granted = parse_expires(response.headers.get("expires"))
            requested = parse_expires(dict(extra).get("Expires"))
            self.granted = granted if granted is not None else (requested or 0)
        return response

    def _suspect(self) -> None:
        """An adopted ETag got 412: a publication of ours may live on unseen."""
        if self.adopted and self.cover is not None:
            self.cover_until = asyncio.get_running_loop().time() + self.expires

    def _cover_now(self) -> bytes | None:
        """The cover to show instead of a removal, while a lost publication may live."""
        if self.cover is not None and asyncio.get_running_loop().time() < self.cover_until:
            return self.cover
        return None

    def _forget(self) -> None:
        """The server holds no publication of ours (any more): start afresh next time."""
        self.etag = None
        self.adopted = False
        self.published = None

    async def _remove(self, mode: Mode = Mode.SYNC) -> Outcome:
        if (cover := self._cover_now()) is not None:
            return await self._put(cover, mode)
        if self.etag is None:
            self.published = None
            return ok()
        response = await self._send([("Expires", "0")])
        if response.is_success or response.status == 412 or self.adopted:
            # 412: the server no longer has it, which is what we want. An adopted ETag
            # it refuses otherwise is one it never made or cannot read: nothing to remove.
            if response.status == 412:
                self._suspect()
            self._forget()
            return await self._remove()  # nothing left to remove, or a cover to show
        return from_response(response, f"PUBLISH {self.presentity} (remove)")

    async def _put(self, body: bytes, mode: Mode) -> Outcome:
        if self.etag is not None and self.published == body and mode is Mode.SYNC:
            return ok(self.granted)
        fresh_tried = interval_tried = False
        while True:
            expires = [("Expires", str(self.expires))]
            if self.etag is not None and self.published == body and mode is Mode.REFRESH:
                response = await self._send(expires)
            else:
                response = await self._send(expires, body)
            if response.is_success:
                if self.etag is None:
                    # RFC 3903 §11.3 requires SIP-ETag in a 2xx; without it we cannot
                    # refresh or remove, so the next change starts afresh.
                    self.published = None
                    return Outcome(
                        OutcomeKind.RETRY, f"PUBLISH {self.presentity}: 2xx without SIP-ETag"
                    )
                self.published = body
                return ok(self.granted)
            if response.status == 412 and not fresh_tried:
                fresh_tried = True
                self.lost += 1
                self._suspect()
                self._forget()
                continue
            if self.adopted and response.status != 423 and not fresh_tried:
                # Kamailio 5.6 answers 500, not 412, to an ETag not of its own making (a
                # replaced server): a refused adopted ETag is as good as gone, and that
                # server never held a publication of ours to hide.
                fresh_tried = True
                self._forget()
                continue
            if response.status == 423 and not interval_tried:
                interval_tried = True
                minimum = parse_expires(response.headers.get("min-expires"))
                if minimum is not None and minimum > self.expires:
                    self.expires = minimum
                    continue
            if response.status == 412:
                self.etag = None
            return from_response(response, f"PUBLISH {self.presentity}")
