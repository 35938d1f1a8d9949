"""Delivering notifications: latency, batching per URL, retries, slow-endpoint throttling.

graph.md 4.5: Graph POSTs batches (notifications of several subscriptions may share one
POST) and needs a 2xx within 3 s; otherwise it retries for up to 4 hours and then drops
the notification. A response slower than 2,900 ms is slow; an endpoint with at least 100
notifications in the current 10-minute window, 10 % of them slow, is throttled (its
notifications are delayed 10 minutes and failures retried every 10 minutes); at 15 % its
notifications are dropped. Everything waits on the simulator's clock; only the HTTP
timeouts and the slowness of a response are wall-clock, because the receiver is real.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from m365sim.clock import Clock
from m365sim.subscriptions.crypto import ValidationTokens
from m365sim.subscriptions.model import graph_instant
from m365sim.subscriptions.settings import DeliverySettings

HEADERS = {"Content-Type": "application/json; charset=utf-8"}


@dataclass(slots=True, eq=False)
class Pending:
    """One notification on its way to a URL."""

    url: str
    kind: str  # "notification" or "lifecycle"
    subscription_id: str
    item: dict[str, Any]
    app_id: str
    tenant_id: str
    rich: bool
    first_attempt: datetime | None = None
    attempts: int = 0
    # Already held back once by slow-endpoint throttling.
    throttled: bool = False


@dataclass(slots=True, eq=False)
class Endpoint:
    """One notification URL: its queue and its slow-response counters."""

    url: str
    ready: deque[Pending] = field(default_factory=deque)
    senders: int = 0
    window_start: datetime | None = None
    count: int = 0
    slow: int = 0

    def _roll(self, now: datetime, settings: DeliverySettings) -> None:
        if (self.window_start is None
                or (now - self.window_start).total_seconds() >= settings.throttle_window_s):
            self.window_start, self.count, self.slow = now, 0, 0

    def record(self, now: datetime, count: int, slow: bool,
               settings: DeliverySettings) -> None:
        """Count `count` notifications answered (slowly or not) in the current window."""
        self._roll(now, settings)
        self.count += count
        if slow:
            self.slow += count

    def state(self, now: datetime, settings: DeliverySettings) -> str:
        """`ok`, `throttled` or `dropping`, from the current window's counters."""
        self._roll(now, settings)
        if self.count < settings.throttle_min_notifications:
            return "ok"
        share = self.slow / self.count
        if share >= settings.throttle_drop_share:
            return "dropping"
        return "throttled" if share >= settings.throttle_slow_share else "ok"


Timer = Callable[[], None]


class Dispatcher:
    """Queues, times and sends notifications; `max_in_flight` POSTs per URL at a time."""

    def __init__(
        self,
        clock: Clock,
        settings: DeliverySettings,
        tokens: ValidationTokens,
        client: Callable[[], httpx.AsyncClient],
        wanted: Callable[[Pending], bool],
        dropped: Callable[[Pending, str], None],
    ) -> None:
        self.clock = clock
        self.settings = settings
        self.tokens = tokens
        self._client = client
        self._wanted = wanted
        self._dropped = dropped
        # Faults and latency only; nothing secret is drawn from it.
        self.rng = random.Random(settings.seed)  # noqa: S311
        self.log: deque[dict[str, Any]] = deque(maxlen=settings.log_size)
        self.endpoints: dict[str, Endpoint] = {}
        self._heap: list[tuple[datetime, int, Pending | Timer]] = []
        self._order = itertools.count()
        self._kicked: set[str] = set()
        self._wake = asyncio.Event()
        self._senders: set[asyncio.Task[None]] = set()
        self.delivered = 0

    # -- queueing -----------------------------------------------------------------------

    def enqueue(self, pending: Pending, delay_s: float = 0.0) -> None:
        """Send `pending` after `delay_s` seconds of the simulator's clock."""
        if delay_s <= 0:
            self._route(pending)
        else:
            self._push(self.clock.now() + timedelta(seconds=delay_s), pending)

    def call_at(self, when: datetime, timer: Timer) -> None:
        """Run `timer` once the simulator's clock reaches `when`."""
        self._push(when, timer)

    def _push(self, when: datetime, entry: Pending | Timer) -> None:
        heapq.heappush(self._heap, (when, next(self._order), entry))
        self._wake.set()

    def _route(self, pending: Pending) -> None:
        endpoint = self.endpoints.get(pending.url)
        if endpoint is None:
            endpoint = self.endpoints[pending.url] = Endpoint(pending.url)
        now = self.clock.now()
        state = endpoint.state(now, self.settings)
        if state == "dropping":
            self.drop(pending, "endpoint throttled: too many slow responses")
            return
        if state == "throttled" and not pending.throttled:
            pending.throttled = True
            self._push(now + timedelta(seconds=self.settings.throttle_delay_s), pending)
            return
        endpoint.ready.append(pending)
        self._kicked.add(pending.url)
        self._wake.set()

    def drop(self, pending: Pending, reason: str) -> None:
        """Give a notification up, log it, and tell the service."""
        self.record(kind=pending.kind, url=pending.url, outcome="dropped", count=1,
                    subscription_ids=[pending.subscription_id], error=reason)
        self._dropped(pending, reason)

    def record(self, *, kind: str, url: str, outcome: str, count: int,
               subscription_ids: list[str], status: int | None = None,
               duration_ms: float | None = None, slow: bool = False, attempt: int = 1,
               error: str | None = None) -> None:
        """Append one entry to the delivery log."""
        self.log.append({
            "time": graph_instant(self.clock.now()), "kind": kind, "url": url,
            "outcome": outcome, "count": count, "subscriptionIds": subscription_ids,
            "status": status, "durationMs": duration_ms, "slow": slow, "attempt": attempt,
            "error": error,
        })

    # -- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        """Fire due timers and notifications and start senders, until cancelled."""
        try:
            while True:
                self._fire_due()
                self._start_senders()
                self._wake.clear()
                if not self._heap:
                    await self._wake.wait()
                    continue
                wait = (self._heap[0][0] - self.clock.now()).total_seconds()
                if wait > 0:
                    await self._sleep_or_wake(wait)
        finally:
            for task in list(self._senders):
                task.cancel()
            if self._senders:
                await asyncio.gather(*self._senders, return_exceptions=True)

    async def _sleep_or_wake(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    def _fire_due(self) -> None:
        now = self.clock.now()
        while self._heap and self._heap[0][0] <= now:
            _, _, entry = heapq.heappop(self._heap)
            if isinstance(entry, Pending):
                self._route(entry)
            else:
                entry()

    def _start_senders(self) -> None:
        for url in self._kicked:
            endpoint = self.endpoints[url]
            while endpoint.ready and endpoint.senders < self.settings.max_in_flight:
                endpoint.senders += 1
                task = asyncio.create_task(self._drain(endpoint))
                self._senders.add(task)
                task.add_done_callback(self._senders.discard)
        self._kicked.clear()

    async def _drain(self, endpoint: Endpoint) -> None:
        try:
            while endpoint.ready:
                await self._post(endpoint, self._take_batch(endpoint))
        finally:
            endpoint.senders -= 1

    def _take_batch(self, endpoint: Endpoint) -> list[Pending]:
        ready, limit = endpoint.ready, self.settings.max_batch
        if self.settings.reorder and len(ready) > 1:
            head = [ready.popleft() for _ in range(min(len(ready), 2 * limit))]
            self.rng.shuffle(head)
            ready.extendleft(reversed(head))
        first = ready.popleft()
        batch, seen = [first], {id(first.item)}
        # Lifecycle and change notifications go in separate POSTs (chosen), and an
        # injected duplicate (the same item again) starts the next POST.
        while ready and len(batch) < limit:
            candidate = ready[0]
            if candidate.kind != first.kind or id(candidate.item) in seen:
                break
            batch.append(ready.popleft())
            seen.add(id(candidate.item))
        return batch

    async def _post(self, endpoint: Endpoint, batch: list[Pending]) -> None:
        now = self.clock.now()
        wanted = [p for p in batch if self._wanted(p)]
        if len(wanted) < len(batch):
            kept = {id(p) for p in wanted}
            gone = [p.subscription_id for p in batch if id(p) not in kept]
            self.record(kind=batch[0].kind, url=endpoint.url, outcome="discarded",
                        count=len(gone), subscription_ids=sorted(set(gone)),
                        error="subscription deleted or expired")
        if not wanted:
            return
        for pending in wanted:
            pending.attempts += 1
            if pending.first_attempt is None:
                pending.first_attempt = now
        body: dict[str, Any] = {"value": [p.item for p in wanted]}
        # One token per distinct app and tenant among the rich items (resource-data doc).
        pairs = sorted({(p.app_id, p.tenant_id) for p in wanted if p.rich})
        if pairs:
            body["validationTokens"] = [self.tokens.token(a, t, now) for a, t in pairs]
        status, error, elapsed = await self._send(endpoint.url, json.dumps(body).encode())
        ok = status is not None and 200 <= status < 300
        slow = elapsed > self.settings.slow_response_s
        endpoint.record(self.clock.now(), len(wanted), slow, self.settings)
        self.record(kind=batch[0].kind, url=endpoint.url,
                    outcome="delivered" if ok else "failed", count=len(wanted),
                    subscription_ids=sorted({p.subscription_id for p in wanted}),
                    status=status, duration_ms=round(elapsed * 1000.0, 3), slow=slow,
                    attempt=max(p.attempts for p in wanted), error=error)
        if ok:
            self.delivered += len(wanted)
            return
        for pending in wanted:
            self._retry(pending, endpoint)

    async def _send(self, url: str, content: bytes) -> tuple[int | None, str | None, float]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.delivery_timeout_s):
                response = await self._client().post(url, content=content, headers=HEADERS)
        except TimeoutError:
            return None, "no answer within the delivery timeout", time.perf_counter() - started
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}", time.perf_counter() - started
        return response.status_code, None, time.perf_counter() - started

    def _retry(self, pending: Pending, endpoint: Endpoint) -> None:
        now = self.clock.now()
        settings = self.settings
        if endpoint.state(now, settings) != "ok":
            delay = settings.throttle_delay_s
            pending.throttled = True
        else:
            delay = min(settings.retry_initial_s * 2 ** (pending.attempts - 1),
                        settings.retry_max_s)
        first = pending.first_attempt or now
        if (now - first).total_seconds() + delay > settings.retry_window_s:
            self.drop(pending, "not delivered within the retry window")
            return
        self._push(now + timedelta(seconds=delay), pending)
