"""Receiving Graph's webhook POSTs: check them, answer at once, process them in order.

Rules (graph.md 4.5): answer within 3 s (202, work queued); verify `clientState` of every
notification against the subscription's secret; rich notifications carry the presence
itself (decrypted here) and validation tokens proving Graph sent them; basic ones carry
ids only, and the changed people are read back in batches, never one request per change.

The queue is bounded: what does not fit is answered 202 all the same and its people are
read back from Graph instead (one batched read), so an overload costs a little staleness,
never a lost change nor a late answer. Decryption (one RSA unwrap per rich notification,
about 0.5-1.2 ms) runs off the event loop, in worker processes (a busy loop kept
decryption threads waiting for the GIL: graph/decrypt_worker.py); a thread if they fail.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from m365pbx.clock import Clock
from m365pbx.graph.decrypt_worker import DecryptWorker, WorkerFailed
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


class Elsewhere(Protocol):
    """Several nodes (docs/cluster.md): subscriptions of tenants another node runs, and the
    way their notifications reach that node."""

    async def known(self, subscription_id: str) -> KnownSubscription | None:
        """The subscription if it is one of ours that another node's tenant holds."""
        ...

    async def hand_off(self, entries: list[tuple[KnownSubscription, dict[str, Any]]]) -> None:
        """Leave checked notifications (as Graph sent them) for their tenant's holder."""
        ...


LifecycleHandler = Callable[[KnownSubscription, str], Awaitable[None]]
Entry = tuple[KnownSubscription, ChangeNotification]
# Rich notifications decrypted per worker-thread task: small enough that the first readings
# of a large batch reach the PBX while the rest are still being decrypted.
DECRYPT_CHUNK = 16
# Notifications taken from the queue per round (each round's readings go out in order).
ROUND = 256
# Rounds with at least this many rich notifications go to the worker processes (all: a
# thread next to a busy loop waits for the GIL; a pipe round trip costs ~0.1 ms of loop).
PROCESS_AT = 1
# Notifications a worker may have in hand before the next go to the following worker. Spread
# evenly, a second worker on a 2-core machine competed with the event loop even when one
# kept up (p99 17 → 37 ms at 2,000 single notifications a second); kept for a backlog, it
# is what lets 3,000 a second through (p99 372 → 97 ms): bench/bench_notify_latency.py.
SPILL_AT = 32
# Each worker holds about 33 MB; four decrypt 4,000-16,000 rich notifications a second (an
# RSA-2048 unwrap takes 0.25-1.2 ms per core), more than a tenant's Graph sends.
MAX_DECRYPT_PROCESSES = 4
OVERFLOW_LOG_EVERY = 60.0


def _decrypt_all(work: list[tuple[ChangeNotification, rsa.RSAPrivateKey]]
                 ) -> list[dict[str, Any] | None]:
    """Decrypt in a worker thread; None for content that fails its checks."""
    done: list[dict[str, Any] | None] = []
    for item, key in work:
        assert item.encrypted is not None
        try:
            done.append(decrypt_content(item.encrypted, key))
        except MalformedNotification:
            done.append(None)
    return done


@dataclass
class _Round:
    """Notifications taken from the queue together, their decryption under way."""

    taken: list[tuple[int, KnownSubscription, ChangeNotification]]
    position: dict[int, int]  # id() of a rich notification -> its index in the work
    chunks: list[asyncio.Future[list[dict[str, Any] | None]]]


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
        decrypt_processes: int | None = None,
    ) -> None:
        self.clock = clock
        self.subscriptions = subscriptions
        self.certificates = certificates
        self.signing_keys = signing_keys
        self.on_presence = on_presence
        self.on_basic = on_basic
        self.on_lifecycle = on_lifecycle
        self.counters: Counter[str] = Counter()
        self.elsewhere: Elsewhere | None = None  # set on a node of several
        self.refusals = Refusals(clock)
        # Graph sends the same validation tokens (valid for an hour) with every rich batch;
        # tokens verified once are trusted until they expire instead of checking the RS256
        # signature on every POST (about 0.15 ms each, a sixth of a notification's cost).
        self._verified: dict[tuple[tuple[str, ...], frozenset[str], frozenset[str]], float] = {}
        self.queue_size = queue_size
        self._queue: deque[tuple[int, KnownSubscription, ChangeNotification]] = deque()
        self._queued = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._sequence = 0
        # A person whose notification overflowed is read back from Graph; what is still
        # queued for them from before is older than that read and is skipped.
        self._read_back_at: dict[str, int] = {}
        self._overflow_logged = float("-inf")
        self._overflow_unlogged = 0
        # A worker process per core, at most MAX_DECRYPT_PROCESSES. The event loop needs one
        # of the cores, so the first worker takes the work and the others only what it has
        # not caught up with (SPILL_AT).
        self.decrypt_processes = decrypt_processes or min(
            MAX_DECRYPT_PROCESSES, max(1, os.cpu_count() or 1))
        self.process_at = PROCESS_AT
        self._thread: ThreadPoolExecutor | None = None
        self._workers: list[DecryptWorker] = []
        self._workers_failed: str | None = None
        self._ders: dict[str, tuple[rsa.RSAPrivateKey, bytes]] = {}
        # Rich notifications sent to a worker as they were queued: id(item) -> the chunk's
        # answer and the item's place in it. Sending at once keeps the worker busy however
        # late the loop comes round to hand the readings on.
        self._early: dict[int, tuple[asyncio.Future[list[dict[str, Any] | None]], int]] = {}

    async def receive(self, body: bytes, *, source: str | None = None) -> Verdict:
        """Check one POSTed body; queue what is valid; say what to answer."""
        try:
            batch = parse_notifications(body)
        except MalformedNotification as exc:
            return self.refuse("malformed", 400, str(exc), source=source)
        checked: list[Entry] = []
        remote: dict[int, int] = {}  # index in `checked` -> index in the body's value
        unknown = 0
        looked_up: dict[str, KnownSubscription | None] = {}  # a batch shares a few
        here: dict[str, bool] = {}
        for index, item in enumerate(batch.notifications):
            sid = item.subscription_id
            if sid in looked_up:
                known = looked_up[sid]
            else:
                known = looked_up[sid] = self.subscriptions(sid)
                here[sid] = known is not None
                if known is None and self.elsewhere is not None:
                    try:
                        known = looked_up[sid] = await self.elsewhere.known(sid)
                    except Exception as exc:
                        # Possibly another node's: a 503 makes Graph retry, a 202 loses it.
                        return self.refuse(
                            "handoff_failed", 503, "cannot look up subscription "
                            f"{sid} in the database: {type(exc).__name__}: {exc}",
                            source=source)
            if known is None:
                # An old subscription of ours (e.g. before a restart): nothing to do with it,
                # and an error answer would only make Graph retry for hours.
                self.counters["unknown_subscription"] += 1
                unknown += 1
                continue
            if not client_state_matches(known.client_state, item.client_state):
                return self.refuse("forged", 403, "client state does not match that of "
                                   f"subscription {item.subscription_id}", source=source)
            if not here[sid]:
                remote[len(checked)] = index
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
        if remote:
            refused = await self._hand_off(body, checked, remote, source)
            if refused is not None:
                return refused
            checked = [entry for position, entry in enumerate(checked) if position not in remote]
        self._enqueue(checked)
        self.counters["accepted"] += len(checked)
        return Verdict(202, accepted=len(checked) + len(remote))

    async def _hand_off(self, body: bytes, checked: list[Entry], remote: dict[int, int],
                        source: str | None) -> Verdict | None:
        """Leave the notifications of tenants another node runs for it; None when done."""
        assert self.elsewhere is not None
        values = json.loads(body)["value"]  # parsed and checked already
        try:
            await self.elsewhere.hand_off([(checked[position][0], values[index])
                                           for position, index in remote.items()])
        except Exception as exc:
            # Graph retries a 5xx for hours: better than a 202 for notifications nobody has.
            return self.refuse("handoff_failed", 503, "cannot hand notifications to the node "
                               f"running their tenant: {type(exc).__name__}: {exc}",
                               source=source)
        self.counters["handed_off"] += len(remote)
        return None

    def take_handed(self, body: str, fallback: Callable[[str], KnownSubscription | None]
                    ) -> int:
        """Queue notifications another node received and checked for a tenant this node
        runs (docs/cluster.md); `fallback` names the subscriptions not known here (yet)."""
        try:
            batch = parse_notifications(body.encode())
        except MalformedNotification as exc:
            self.counters["handed_malformed"] += 1
            log.error("notifications handed over by another node are malformed: %s", exc)
            return 0
        checked: list[Entry] = []
        unknown = 0
        for item in batch.notifications:
            known = self.subscriptions(item.subscription_id) or fallback(item.subscription_id)
            if known is None:
                self.counters["unknown_subscription"] += 1
                unknown += 1
                continue
            checked.append((known, item))
        if unknown:
            self.refusals.refuse("unknown_subscription", 202,
                                 f"{unknown} notification(s) handed over by another node for "
                                 "subscriptions this node does not hold (ignored)",
                                 level=logging.INFO)
        self._enqueue(checked)
        self.counters["taken_over"] += len(checked)
        return len(checked)

    def _enqueue(self, checked: list[Entry]) -> None:
        room = self.queue_size - len(self._queue)
        overflow: list[Entry] = []
        rich: list[ChangeNotification] = []
        for known, item in checked:
            self._sequence += 1
            # Lifecycle events are few and cannot be read back: they always get a place.
            if room <= 0 and item.lifecycle_event is None:
                overflow.append((known, item))
                continue
            self._queue.append((self._sequence, known, item))
            room -= 1
            if item.encrypted is not None and known.kind == "presence" and (
                    item.lifecycle_event is None):
                rich.append(item)
        if rich and self._workers and self._workers_failed is None:
            self._send_early(rich)
        if len(self._queue):
            self._idle.clear()
            self._queued.set()
        if overflow:
            self._overflow(overflow)

    def _send_early(self, items: list[ChangeNotification]) -> None:
        """Hand rich notifications to the workers now (see `_early`)."""
        work = [(item, key) for item in items if item.encrypted is not None
                and (key := self.certificates(item.encrypted.certificate_id)) is not None]
        try:
            for start in range(0, len(work), DECRYPT_CHUNK):
                part = work[start:start + DECRYPT_CHUNK]
                future = self._submit(part)
                for index, (item, _) in enumerate(part):
                    self._early[id(item)] = (future, index)
        except WorkerFailed as exc:
            self._workers_gone(exc)  # what was not sent is decrypted by rounds, in a thread

    def _submit(self, part: list[tuple[ChangeNotification, rsa.RSAPrivateKey]]
                ) -> asyncio.Future[list[dict[str, Any] | None]]:
        """Send one chunk to the least busy worker."""
        keys = {item.encrypted.certificate_id: self._der(item.encrypted.certificate_id, key)
                for item, key in part if item.encrypted is not None}
        worker = next((w for w in self._workers if w.in_hand < SPILL_AT), None) or min(
            self._workers, key=lambda w: w.in_hand)
        return worker.submit(keys, [item.encrypted for item, _ in part
                                    if item.encrypted is not None])

    def _overflow(self, entries: list[Entry]) -> None:
        """Read back from Graph the people whose notifications do not fit the queue."""
        by_subscription: dict[str, tuple[KnownSubscription, list[str]]] = {}
        for known, item in entries:
            user_id = item.resource_id
            self._read_back_at[user_id] = self._sequence
            by_subscription.setdefault(known.id, (known, []))[1].append(user_id)
        for known, user_ids in by_subscription.values():
            self.on_basic(known, user_ids)
        self.counters["overflowed"] += len(entries)
        now = self.clock.now().timestamp()
        if now - self._overflow_logged < OVERFLOW_LOG_EVERY:
            self._overflow_unlogged += len(entries)
            return
        log.warning("%d Graph notification(s) did not fit the queue of %d (%d more since the "
                    "last line): their people are read back from Graph instead",
                    len(entries), self.queue_size, self._overflow_unlogged)
        self._overflow_logged = now
        self._overflow_unlogged = 0

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
        """What /healthz shows about webhook notifications: accepted, queued, read back
        because the queue was full, refused lately and why (several nodes: handed to the
        tenant's holder, and taken over from other nodes)."""
        several = {} if self.elsewhere is None else {
            "handed_off": self.counters["handed_off"],
            "taken_over": self.counters["taken_over"]}
        return {"accepted": self.counters["accepted"], "queued": len(self._queue), **several,
                "overflowed": self.counters["overflowed"],
                "decrypting": self.decrypting(), **self.refusals.status()}

    def decrypting(self) -> str:
        """Where rich notifications are decrypted, in words."""
        if self._workers_failed is not None:
            return f"in a thread: the worker processes failed ({self._workers_failed})"
        return f"in {self.decrypt_processes} worker process(es)"

    async def run(self) -> None:
        """Process queued notifications in arrival order until cancelled.

        The next round's decryption starts before this round is handed on, so the workers
        always have work while the event loop is busy answering POSTs.
        """
        ahead: _Round | None = None
        while True:
            if not self._queue and ahead is None:
                self._read_back_at.clear()
                self._idle.set()
                self._queued.clear()
                await self._queued.wait()
                continue
            current, ahead = ahead, (await self._prepare() if self._queue else None)
            if current is not None:
                await self._finish(current, raise_errors=False)

    async def warm_up(self) -> None:
        """Start the decryption worker processes now: a service that takes webhooks would
        otherwise keep its first rich notifications waiting while one boots (about
        150 ms: the interpreter and `cryptography`), the p99 of a short run."""
        await self._start_workers()

    async def drain(self) -> None:
        """Process everything queued right now (tests and shutdown)."""
        while self._queue:
            await self._finish(await self._prepare(), raise_errors=True)
        self._read_back_at.clear()
        self._idle.set()

    async def idle(self) -> None:
        """Wait until everything queued so far has been processed (by `run`)."""
        await self._idle.wait()

    async def aclose(self) -> None:
        """Let the decryption thread and worker processes go."""
        if self._thread is not None:
            self._thread.shutdown(wait=False, cancel_futures=True)
            self._thread = None
        workers, self._workers = self._workers, []
        self._early.clear()
        for worker in workers:
            await worker.stop()

    async def _prepare(self) -> _Round:
        """Take the next round from the queue and start decrypting its rich notifications."""
        taken = [self._queue.popleft() for _ in range(min(ROUND, len(self._queue)))]
        work: list[tuple[ChangeNotification, rsa.RSAPrivateKey]] = []
        position: dict[int, int] = {}
        for sequence, known, item in taken:
            if id(item) in self._early:
                continue  # on its way already
            if self._read_back_at.get(item.resource_id, -1) >= sequence:
                continue  # superseded already: no use decrypting it
            if known.kind == "presence" and item.encrypted is not None and (
                    item.lifecycle_event is None):
                key = self.certificates(item.encrypted.certificate_id)
                if key is not None:
                    position[id(item)] = len(work)
                    work.append((item, key))
        return _Round(taken, position, await self._decrypt(work))

    async def _finish(self, round_: _Round, *, raise_errors: bool) -> None:
        """Hand on a round's notifications in order."""
        readings: list[PresenceReading] = []
        try:
            for entry in [*round_.taken, None]:
                try:
                    if entry is None:
                        self._flush(readings)
                        continue
                    sequence, known, item = entry
                    if self._read_back_at.get(item.resource_id, -1) >= sequence:
                        # A read back newer than this notification is on its way.
                        self.counters["superseded"] += 1
                        self._early.pop(id(item), None)
                        continue
                    await self._hand_on(known, item, round_.position, round_.chunks,
                                        readings)
                except Exception:
                    readings.clear()
                    if raise_errors:
                        raise
                    self.counters["processing_failed"] += 1
                    log.exception("notification processing failed")
        finally:
            for future in round_.chunks:
                future.cancel()

    async def _hand_on(self, known: KnownSubscription, item: ChangeNotification,
                       position: dict[int, int], chunks: list[asyncio.Future[Any]],
                       readings: list[PresenceReading]) -> None:
        if item.lifecycle_event is not None:
            self._flush(readings)
            self.counters[f"lifecycle_{item.lifecycle_event}"] += 1
            await self.on_lifecycle(known, item.lifecycle_event)
            return
        if known.kind != "presence" or item.encrypted is None:
            self._flush(readings)
            self.on_basic(known, [item.resource_id])
            return
        early = self._early.pop(id(item), None)
        index = position.get(id(item))
        if early is not None:
            chunk, index = early
        elif index is not None:
            chunk, index = chunks[index // DECRYPT_CHUNK], index % DECRYPT_CHUNK
        else:
            self.counters["unknown_certificate"] += 1
            self._flush(readings)
            self.on_basic(known, [item.resource_id])
            return
        if not chunk.done():
            self._flush(readings)  # on to the PBX while the rest decrypt
        try:
            resource = (await chunk)[index]
        except WorkerFailed as exc:
            self._workers_gone(exc)
            resource = None  # read back instead
        if resource is None:
            self.counters["undecryptable"] += 1
            self._flush(readings)
            self.on_basic(known, [item.resource_id])
            return
        self.counters["decrypted"] += 1
        readings.append(parse_presence(resource))

    async def _decrypt(self, work: list[tuple[ChangeNotification, rsa.RSAPrivateKey]]
                       ) -> list[asyncio.Future[list[dict[str, Any] | None]]]:
        """Start decrypting `work` in chunks of DECRYPT_CHUNK, off the event loop."""
        slices = [work[start:start + DECRYPT_CHUNK]
                  for start in range(0, len(work), DECRYPT_CHUNK)]
        chunks: list[asyncio.Future[list[dict[str, Any] | None]]] = []
        if len(work) >= self.process_at and await self._start_workers():
            try:
                for part in slices:
                    chunks.append(self._submit(part))
            except WorkerFailed as exc:
                self._workers_gone(exc)
        loop = asyncio.get_running_loop()
        if slices[len(chunks):] and self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="decrypt")
        chunks += [loop.run_in_executor(self._thread, _decrypt_all, part)
                   for part in slices[len(chunks):]]
        return chunks

    async def _start_workers(self) -> bool:
        if self._workers_failed is not None:
            return False
        try:
            while len(self._workers) < self.decrypt_processes:
                self._workers.append(await DecryptWorker.start())
        except OSError as exc:
            self._workers_gone(exc)
            return False
        return True

    def _workers_gone(self, exc: BaseException) -> None:
        if self._workers_failed is not None:
            return
        self._workers_failed = str(exc)
        log.error("decrypting in worker processes failed (%s): decrypting in a thread from "
                  "now on, a fraction of the throughput under load", exc)
        for worker in self._workers:
            if worker.process.returncode is None:
                worker.process.kill()

    def _der(self, certificate_id: str, key: rsa.RSAPrivateKey) -> bytes:
        known = self._ders.get(certificate_id)
        if known is None or known[0] is not key:
            known = self._ders[certificate_id] = (key, key.private_bytes(
                Encoding.DER, PrivateFormat.PKCS8, NoEncryption()))
        return known[1]

    def _flush(self, readings: list[PresenceReading]) -> None:
        if readings:
            self.on_presence(list(readings))
            readings.clear()
