"""Receiving Graph's webhook POSTs: check them, answer at once, process them in order.

Rules (graph.md 4.5): answer within 3 s (202, work queued); verify `clientState` of every
notification against the subscription's secret; rich notifications carry the presence
itself (decrypted here) and validation tokens proving Graph sent them; basic ones carry
ids only, and the changed people are read back in batches, never one request per change.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from m365pbx.clock import Clock
from m365pbx.graph.notifications import (
    ChangeNotification,
    MalformedNotification,
    client_state_matches,
    decrypt_content,
    parse_notifications,
    validation_token_key_ids,
    verify_validation_tokens,
)
from m365pbx.graph.presence import PresenceReading, parse_presence
from m365pbx.graph.signing_keys import SigningKeysUnavailable
from m365pbx.sync.teams_to_pbx.refusals import Refusals

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KnownSubscription:
    """What the receiver needs to know about one of our subscriptions."""

    id: str
    client_state: str = field(repr=False)
    tenant_id: str
    app_id: str
    kind: str = "presence"


@dataclass(frozen=True)
class Verdict:
    """The HTTP answer for a webhook POST and why."""

    status: int
    reason: str = ""
    accepted: int = 0


LifecycleHandler = Callable[[KnownSubscription, str], Awaitable[None]]


class NotificationReceiver:
    """Checks webhook bodies and turns valid notifications into presence readings."""

    def __init__(
        self,
        clock: Clock,
        subscriptions: Callable[[str], KnownSubscription | None],
        certificates: Callable[[str], rsa.RSAPrivateKey | None],
        signing_keys: Callable[[str, set[str]], Awaitable[Mapping[str, Any]]],
        on_presence: Callable[[list[PresenceReading]], None],
        on_basic: Callable[[KnownSubscription, list[str]], None],
        on_lifecycle: LifecycleHandler,
        *,
        queue_size: int = 10_000,
    ) -> None:
        self.clock = clock
        self.subscriptions = subscriptions
        self.certificates = certificates
        self.signing_keys = signing_keys
        self.on_presence = on_presence
        self.on_basic = on_basic
        self.on_lifecycle = on_lifecycle
        self.counters: Counter[str] = Counter()
        self.refusals = Refusals(clock)
        # Graph sends the same validation tokens (valid for an hour) with every rich batch;
        # tokens verified once are trusted until they expire instead of checking the RS256
        # signature on every POST (about 0.15 ms each, a sixth of a notification's cost).
        self._verified: dict[tuple[tuple[str, ...], frozenset[str], frozenset[str]], float] = {}
        self._queue: asyncio.Queue[tuple[KnownSubscription, ChangeNotification]] = (
            asyncio.Queue(maxsize=queue_size)
        )

    async def receive(self, body: bytes, *, source: str | None = None) -> Verdict:
        """Check one POSTed body; queue what is valid; say what to answer."""
        try:
            batch = parse_notifications(body)
        except MalformedNotification as exc:
            return self.refuse("malformed", 400, str(exc), source=source)
        checked: list[tuple[KnownSubscription, ChangeNotification]] = []
        unknown = 0
        for item in batch.notifications:
            known = self.subscriptions(item.subscription_id)
            if known is None:
                # An old subscription of ours (e.g. before a restart): nothing to do with it,
                # and an error answer would only make Graph retry for hours.
                self.counters["unknown_subscription"] += 1
                unknown += 1
                continue
            if not client_state_matches(known.client_state, item.client_state):
                return self.refuse("forged", 403, "client state does not match that of "
                                   f"subscription {item.subscription_id}", source=source)
            checked.append((known, item))
        if unknown:
            self.refusals.refuse("unknown_subscription", 202,
                                 f"{unknown} notification(s) for subscriptions we do not hold "
                                 "(ignored)", level=logging.INFO, source=source)
        rich = [(known, item) for known, item in checked if item.encrypted is not None]
        if rich:
            refused = await self._check_validation_tokens(batch.validation_tokens, rich, source)
            if refused is not None:
                return refused
        if self._queue.maxsize and self._queue.qsize() + len(checked) > self._queue.maxsize:
            # Graph retries a 5xx later; better than accepting what we cannot keep.
            return self.refuse("overloaded", 503, "too many notifications queued",
                               source=source)
        for entry in checked:
            self._queue.put_nowait(entry)
        self.counters["accepted"] += len(checked)
        return Verdict(202, accepted=len(checked))

    async def _check_validation_tokens(
        self, tokens: list[str], rich: list[tuple[KnownSubscription, ChangeNotification]],
        source: str | None,
    ) -> Verdict | None:
        """None when the tokens prove Graph sent the rich notifications, else the refusal."""
        app_ids = frozenset(known.app_id for known, _ in rich)
        tenant_ids = frozenset(known.tenant_id for known, _ in rich)
        proof = (tuple(tokens), app_ids, tenant_ids)
        now = self.clock.now().timestamp()
        if now <= self._verified.get(proof, -1.0):
            return None
        try:
            kids = validation_token_key_ids(tokens)
            keys = await self.signing_keys(rich[0][0].tenant_id, kids)
            until = verify_validation_tokens(tokens, app_ids=set(app_ids),
                                             tenant_ids=set(tenant_ids), keys=keys, now=now)
        except MalformedNotification as exc:
            return self.refuse("forged", 403, str(exc), source=source)
        except SigningKeysUnavailable as exc:
            return self.refuse("signing_keys", 503, "cannot check the validation tokens: "
                               + exc.describe(), source=source)
        if len(self._verified) >= 256:
            self._verified.clear()
        self._verified[proof] = until
        return None

    def refuse(self, kind: str, status: int, reason: str, *,
               source: str | None = None) -> Verdict:
        """Count, log (rate-limited) and answer one refused POST."""
        self.counters[kind] += 1
        self.refusals.refuse(kind, status, reason, source=source)
        return Verdict(status, reason)

    def health(self) -> dict[str, Any]:
        """What /healthz shows about webhook notifications: accepted, refused lately and why."""
        return {"accepted": self.counters["accepted"], **self.refusals.status()}

    async def run(self) -> None:
        """Process queued notifications in arrival order until cancelled."""
        while True:
            known, item = await self._queue.get()
            try:
                await self._process(known, item)
            except Exception:
                self.counters["processing_failed"] += 1
                log.exception("notification processing failed")

    async def drain(self) -> None:
        """Process everything queued right now (tests and shutdown)."""
        while not self._queue.empty():
            known, item = self._queue.get_nowait()
            await self._process(known, item)

    async def _process(self, known: KnownSubscription, item: ChangeNotification) -> None:
        if item.lifecycle_event is not None:
            self.counters[f"lifecycle_{item.lifecycle_event}"] += 1
            await self.on_lifecycle(known, item.lifecycle_event)
            return
        if known.kind != "presence" or item.encrypted is None:
            self.on_basic(known, [item.resource_id])
            return
        key = self.certificates(item.encrypted.certificate_id)
        if key is None:
            self.counters["unknown_certificate"] += 1
            self.on_basic(known, [item.resource_id])
            return
        try:
            resource = decrypt_content(item.encrypted, key)
        except MalformedNotification:
            self.counters["undecryptable"] += 1
            self.on_basic(known, [item.resource_id])
            return
        self.on_presence([parse_presence(resource)])
