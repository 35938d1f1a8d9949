"""One SUBSCRIBE dialog (RFC 6665) for one event package at one resource.

- The dialog is known before the 2xx arrives: the first NOTIFY may come first (seen with
  Kamailio), and it completes the dialog with its From tag (RFC 6665 §4.1.2.4).
- Refresh: in-dialog SUBSCRIBE; 481 means the server lost the dialog → a new one.
- 423 → retry with Min-Expires; 489 → the server does not serve the event (give up).
- NOTIFY: Subscription-State `active`/`pending` keep it alive, `terminated` ends the
  dialog and tells the listener the reason (RFC 6665 §4.1.3: deactivated/timeout →
  re-subscribe at once; probation/giveup → after Retry-After; rejected/noresource → stop).
- A NOTIFY with a CSeq older than the last one gets 500 (RFC 3261 §12.2.2).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

from m365pbx.pbx.sip.digest import DigestSession
from m365pbx.pbx.sip.fields import (
    FieldError,
    parse_cseq,
    parse_expires,
    parse_name_addr,
    parse_value_params,
)
from m365pbx.pbx.sip.message import SipRequest, SipResponse, response_for
from m365pbx.pbx.sip.outcome import Outcome, OutcomeKind, from_exception, from_response, ok
from m365pbx.pbx.sip.retry import parse_retry_after
from m365pbx.pbx.sip.transactions import TransactionAborted
from m365pbx.pbx.sip.transport import TransportError
from m365pbx.pbx.sip.useragent import BadCredentials, Leg, UserAgent

_SEND_ERRORS = (TimeoutError, TransactionAborted, TransportError, BadCredentials)
DialogKey = tuple[str, str]


class SubscriptionListener(Protocol):
    """Receives what a subscription learns."""

    def notified(self, subscription: Subscription, content_type: str, body: bytes) -> bool:
        """A NOTIFY brought a body (empty: no state at the server); False if it is bad."""

    def terminated(
        self, subscription: Subscription, reason: str, retry_after: float | None
    ) -> None:
        """The server ended the subscription (RFC 6665 §4.1.3 reason, maybe empty)."""

    def bad_notify(self, reason: str, detail: str) -> None:
        """A NOTIFY for this subscription could not be used (counted as bad input)."""


class Subscription:
    """A subscription to `event` at `resource`, registered in `registry` by dialog key."""

    def __init__(
        self,
        ua: UserAgent,
        resource: str,
        subscriber: str,
        event: str,
        accept: str,
        listener: SubscriptionListener,
        registry: dict[DialogKey, Subscription],
        *,
        auth: DigestSession | None = None,
        expires: int = 3600,
        limit: float | None = None,
    ) -> None:
        self.ua = ua
        self.resource = resource
        self.subscriber = subscriber
        self.event = event
        self.accept = accept
        self.listener = listener
        self.registry = registry
        self.auth = auth
        self.expires = expires
        self.limit = limit
        self.granted = 0
        self.confirmed = False
        self.lost = 0  # times the server answered a refresh with 481: it forgot the dialog
        self.remote_cseq: int | None = None
        self.on_new_dialog: Callable[[], None] = lambda: None
        self._lock = asyncio.Lock()
        self.leg = self._new_leg()

    @property
    def key(self) -> DialogKey:
        """(Call-ID, our tag): how an incoming NOTIFY finds this subscription."""
        return self.leg.call_id, self.leg.local_tag

    def _new_leg(self) -> Leg:
        leg = Leg(local_uri=self.subscriber, remote_uri=self.resource, target=self.resource)
        self.registry[(leg.call_id, leg.local_tag)] = self
        return leg

    def restart(self) -> None:
        """Forget the dialog; the next `subscribe()` starts a new one."""
        self.registry.pop(self.key, None)
        self.leg = self._new_leg()
        self.confirmed = False
        self.remote_cseq = None
        self.on_new_dialog()

    def forget(self) -> None:
        """Stop routing NOTIFYs to this subscription."""
        self.registry.pop(self.key, None)

    def _headers(self, expires: int) -> list[tuple[str, str]]:
        return [("Event", self.event), ("Accept", self.accept), ("Expires", str(expires))]

    async def subscribe(self) -> Outcome:
        """Create or refresh the subscription."""
        async with self._lock:
            try:
                return await self._subscribe()
            except _SEND_ERRORS as exc:
                return from_exception(exc, f"SUBSCRIBE {self.event} {self.resource}")

    async def _subscribe(self) -> Outcome:
        dialog_retried = interval_tried = False
        while True:
            in_dialog = self.leg.remote_tag is not None
            response = await self.ua.send(
                self.leg,
                "SUBSCRIBE",
                self._headers(self.expires),
                auth=self.auth,
                limit=self.limit,
            )
            if response.is_success:
                self._confirm(response)
                return ok(self.granted)
            if response.status == 481 and in_dialog and not dialog_retried:
                dialog_retried = True
                self.lost += 1
                self.restart()
                continue
            if response.status == 423 and not interval_tried:
                interval_tried = True
                minimum = parse_expires(response.headers.get("min-expires"))
                if minimum is not None and minimum > self.expires:
                    self.expires = minimum
                    continue
            if response.status in (481, 408) or not in_dialog:
                # A failed in-dialog refresh may leave the dialog dead at the server.
                self.restart()
            return from_response(response, f"SUBSCRIBE {self.event} {self.resource}")

    def _confirm(self, response: SipResponse) -> None:
        to_value = response.headers.get("to") or ""
        try:
            tag = parse_name_addr(to_value).tag
        except FieldError:
            tag = None
        if self.leg.remote_tag is None and tag:
            self.leg.remote_tag = tag
        if not self.confirmed:
            # RFC 3261 §12.1.2: the route set is the Record-Route list, reversed.
            self.leg.route = list(reversed(response.headers.get_all("record-route")))
            self._update_target(response.headers.get("contact"))
        self.confirmed = True
        granted = parse_expires(response.headers.get("expires"))
        self.granted = granted if granted is not None else self.expires

    def _update_target(self, contact: str | None) -> None:
        if not contact:
            return
        with contextlib.suppress(FieldError):
            self.leg.target = parse_name_addr(contact).uri

    async def unsubscribe(self) -> Outcome:
        """End the subscription (SUBSCRIBE with Expires: 0) and stop routing its NOTIFYs."""
        async with self._lock:
            try:
                if self.leg.remote_tag is None:
                    return ok()
                response = await self.ua.send(
                    self.leg,
                    "SUBSCRIBE",
                    self._headers(0),
                    auth=self.auth,
                    limit=self.limit,
                )
                return ok() if response.is_success else from_response(response, "unsubscribe")
            except _SEND_ERRORS as exc:
                return from_exception(exc, f"unsubscribe {self.event} {self.resource}")
            finally:
                self.forget()

    def handle_notify(self, request: SipRequest) -> SipResponse:
        """Answer a NOTIFY of this dialog and pass its news to the listener."""
        event, _ = parse_value_params(request.headers.get("event") or "")
        if event != self.event.lower():
            self.listener.bad_notify("unknown-event", f"NOTIFY for event {event!r}")
            return response_for(request, 489)
        try:
            number, _ = parse_cseq(request.headers.get("cseq") or "")
            sender = parse_name_addr(request.headers.get("from") or "")
        except FieldError as exc:
            self.listener.bad_notify("bad-header", str(exc))
            return response_for(request, 400)
        if self.remote_cseq is not None and number < self.remote_cseq:
            return response_for(request, 500, "Stale CSeq")
        state_value = request.headers.get("subscription-state")
        if not state_value:
            self.listener.bad_notify("bad-header", "NOTIFY without Subscription-State")
            return response_for(request, 400, "Missing Subscription-State")
        state, params = parse_value_params(state_value)
        if state not in ("active", "pending", "terminated"):
            self.listener.bad_notify("bad-header", f"Subscription-State {state!r}")
            return response_for(request, 400, "Bad Subscription-State")
        content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if (request.body or state != "terminated") and not self.listener.notified(
            self, content_type, request.body
        ):
            # Bad input changes nothing (design.md rule 7), not even the dialog's CSeq; 200
            # keeps the server from dropping the subscription over one bad body.
            return response_for(request, 200)
        self.remote_cseq = number
        if self.leg.remote_tag is None and sender.tag:
            self.leg.remote_tag = sender.tag
        self._update_target(request.headers.get("contact"))
        if state == "terminated":
            self.forget()
            self.confirmed = False
            retry_after = parse_retry_after(params.get("retry-after"))
            self.listener.terminated(self, params.get("reason", ""), retry_after)
        else:
            expires = parse_expires(params.get("expires"))
            if expires is not None:
                self.granted = expires
        return response_for(request, 200)


def termination_action(reason: str) -> OutcomeKind:
    """RFC 6665 §4.1.3: RETRY for reasons worth a new subscription, FAILED for the rest."""
    if reason in ("rejected", "noresource", "invariant"):
        return OutcomeKind.FAILED
    return OutcomeKind.RETRY
