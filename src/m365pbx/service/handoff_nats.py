"""Webhook notifications handed to the node running their tenant through NATS JetStream
(`cluster.transport: nats`, docs/cluster.md "The NATS transport") instead of the database.

The receiving node checks notifications exactly as on the database path (`WebhookHandoff`
looks the subscriptions up in the store), then publishes each tenant's batch to the
tenant's stream and answers Graph's 202 only once JetStream acknowledged it (stored), or a
503 after 1.5 s. One stream per tenant (`<prefix>_handoff_<tenant>`, work-queue retention,
max age `cluster.handoff_lifetime`) and one durable pull consumer on it: the holder of
`tenant/<name>` pulls while its keeper may act, applies, then acks (which deletes the
message); a new holder continues at the consumer's ack floor. Stream sequences of one
tenant are consecutive, so a sequence the holder never saw that is no longer in the stream
was removed by the max age: such a gap is an expiry, answered like the database path's,
by reading the tenant's people back from Graph.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig
from nats.js.errors import NotFoundError

from m365pbx.clock import Clock
from m365pbx.config.redact import mask_url_password
from m365pbx.core.status import PartState, PartStatus
from m365pbx.service.handoff import HandoffTenant, WebhookHandoff
from m365pbx.store import Store
from m365pbx.sync.teams_to_pbx.receiver import KnownSubscription

__all__ = ["NatsHandoff"]

log = logging.getLogger(__name__)

ROUND_EVERY = 5.0  # seconds between looks at the streams (backlog, who pulls what)
PULL_WAIT = 1.0  # a pull waits this long for a message (short: a cancelled pull may hold one)
ACK_WAIT = 10.0  # a message pulled but not acked goes to the next pull after this long
PUBLISH_WAIT = 1.5  # Graph wants its answer within 3 s: past this a 503 (it retries)
CONNECT_WAIT = 5.0
TAKE = 100  # messages per pull
FIX = ("Check this node's connection to the NATS server (cluster.nats_url) and that it runs "
       "JetStream; Graph retries what was refused, and the holder reads its people back "
       "when handed notifications expire")


class NatsHandoff(WebhookHandoff):
    """The receiver's `Elsewhere` port and the holder's pulls, over NATS JetStream."""

    def __init__(self, store: Store, node: str, clock: Clock, *, lifetime: float,
                 tenants: Callable[[], Iterable[HandoffTenant]], url: str, prefix: str,
                 names: Iterable[str]) -> None:
        super().__init__(store, node, clock, lifetime=lifetime, tenants=tenants)
        self.url = url
        self.prefix = prefix
        self.names = list(names)  # every configured tenant: each has its stream
        self.client: NatsClient | None = None
        self.js: JetStreamContext | None = None
        self.publish_error: str | None = None
        self._pulling: dict[str, asyncio.Task[None]] = {}
        self._last_client_error = ""
        self._closing = False

    def stream(self, tenant: str) -> str:
        """The tenant's stream (and durable consumer) name."""
        return f"{self.prefix}_handoff_{tenant}"

    def subject(self, tenant: str) -> str:
        """The subject the tenant's notifications are published on."""
        return f"{self.prefix}.handoff.{tenant}"

    # --- the receiving node -------------------------------------------------------------------
    async def hand_off(self, entries: list[tuple[KnownSubscription, dict[str, Any]]]) -> None:
        """Publish checked notifications for their tenants' holders, acknowledged by JetStream
        (stored) before this returns; raises after PUBLISH_WAIT (the receiver's 503)."""
        by_tenant: dict[str, list[dict[str, Any]]] = {}
        for known, raw in entries:
            by_tenant.setdefault(self._stored[known.id][0], []).append(raw)
        try:
            js = self.js
            if js is None or self.client is None or not self.client.is_connected:
                raise ConnectionError(self.error or "not connected to the NATS server")
            async with asyncio.timeout(PUBLISH_WAIT):
                for tenant, values in by_tenant.items():
                    await js.publish(self.subject(tenant), json.dumps({"value": values}).encode(),
                                     stream=self.stream(tenant), timeout=PUBLISH_WAIT,
                                     headers={"M365pbx-Received-By": self.node})
        except Exception as exc:
            reason = self._words(exc) or "no acknowledgement in time"
            self.publish_error = f"cannot publish notifications to NATS JetStream: {reason}"
            raise
        self.publish_error = None
        self.counters["handed_off"] += len(entries)

    # --- every node ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Stay connected, keep the streams, and pull what this node's tenants are handed."""
        self._closing = False  # run again after a failure (supervised)
        try:
            while True:
                if self.client is None or self.client.is_closed:
                    await self._connect()
                if self.js is not None:
                    await self._round(self.js)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(ROUND_EVERY):
                        await self._wake.wait()
                self._wake.clear()
        finally:
            # A clean stop lets the pulls end after their fetch (giving back what they will
            # not apply) rather than leave messages to a dead fetch until ACK_WAIT.
            self._closing = True
            pulls = list(self._pulling.values())
            if pulls:
                with contextlib.suppress(BaseException):
                    await asyncio.wait(pulls, timeout=PULL_WAIT + PUBLISH_WAIT)
            for task in pulls:
                task.cancel()
            await asyncio.gather(*pulls, return_exceptions=True)
            if self.client is not None:
                with contextlib.suppress(Exception):
                    await self.client.close()

    async def _connect(self) -> None:
        async def error(exc: Exception) -> None:
            self._last_client_error = self._words(exc)

        async def disconnected() -> None:
            self.listening = False
            if self._closing:
                return
            self._failed(f"disconnected from the NATS server {self._shown_url()}; reconnecting")

        async def reconnected() -> None:
            self._wake.set()  # streams checked, pulls restarted at the next round

        self.js, self.listening = None, False
        try:
            async with asyncio.timeout(CONNECT_WAIT):
                client = await nats.connect(
                    self.url, name=f"m365pbx {self.node}", connect_timeout=2,
                    reconnect_time_wait=1, max_reconnect_attempts=-1, error_cb=error,
                    disconnected_cb=disconnected, reconnected_cb=reconnected)
        except Exception as exc:
            why = self._last_client_error or self._words(exc) or "no answer in time"
            self._failed(f"cannot connect to the NATS server {self._shown_url()}: {why}")
            return
        self.client, self.js = client, client.jetstream(timeout=PUBLISH_WAIT)

    async def _round(self, js: JetStreamContext) -> None:
        """Keep the streams and consumers, count the backlog, start and stop the pulls."""
        try:
            backlog: dict[str, int] = {}
            for name in self.names:
                backlog[name] = await self._ensure(js, name)
        except Exception as exc:
            self.listening = False
            self._failed(f"cannot keep the JetStream streams on {self._shown_url()}: "
                         f"{self._words(exc)}")
            return
        self.backlog, self.listening = backlog, True
        self.publish_error = None  # connected, streams in place: the next publish may work
        if self.error is not None:
            log.info("handing notifications through NATS JetStream again")
            self.error, self.since = None, self.clock.now()
        wanted = {t.name: t for t in self.tenants() if self._may_pull(t)}
        for name, task in list(self._pulling.items()):
            # A pull no longer wanted ends by itself after its fetch (_pull), giving back
            # what it fetched: cancelled, its pending fetch would take messages nobody acks.
            if task.done():
                del self._pulling[name]
        for name, tenant in wanted.items():
            if name not in self._pulling:
                self._pulling[name] = asyncio.create_task(self._pull(js, tenant),
                                                          name=f"handoff pull {name}")

    async def _ensure(self, js: JetStreamContext, tenant: str) -> int:
        """Create or update the tenant's stream and consumer (idempotent); its backlog."""
        config = StreamConfig(
            name=self.stream(tenant), subjects=[self.subject(tenant)],
            retention=RetentionPolicy.WORK_QUEUE, max_age=self.lifetime,
            duplicate_window=min(self.lifetime, 120.0))
        try:
            info = await js.stream_info(config.name or "")
        except NotFoundError:
            info = await js.add_stream(config)
        else:
            if info.config.max_age != config.max_age:
                info = await js.update_stream(config)
        await js.add_consumer(config.name or "", ConsumerConfig(
            durable_name=config.name, ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT,
            filter_subject=self.subject(tenant)))
        return info.state.messages

    def _may_pull(self, tenant: HandoffTenant) -> bool:
        ownership = tenant.ownership
        return (not self._closing and ownership is not None and ownership.lease is not None
                and tenant.ready() and tenant.may_act()
                and any(t is tenant for t in self.tenants()))

    async def _pull(self, js: JetStreamContext, tenant: HandoffTenant) -> None:
        """Pull the tenant's messages while this node may act on it: apply, then ack."""
        name, stream = tenant.name, self.stream(tenant.name)
        try:
            subscription = await js.pull_subscribe_bind(stream, stream)
            expected = (await js.consumer_info(stream, stream)).ack_floor.stream_seq + 1
            while self._may_pull(tenant):
                try:
                    messages = await subscription.fetch(TAKE, timeout=PULL_WAIT)
                except TimeoutError:  # nats-py's own is one too
                    messages = []
                if not messages:
                    # Nothing more: sequences never seen and gone from the stream expired.
                    first = (await js.stream_info(stream)).state.first_seq
                    if first > expected:
                        self._expired(tenant, first - expected)
                        expected = first
                    continue
                await self._load()  # the receiving node may know newer subscriptions
                for position, message in enumerate(messages):
                    if not self._may_pull(tenant):
                        # Given back at once, for the next holder (a node paused past its
                        # lease may not even do that: then they come back after ACK_WAIT).
                        for left in messages[position:]:
                            with contextlib.suppress(Exception):
                                await left.nak()
                        return
                    sequence = message.metadata.sequence.stream
                    if sequence > expected:
                        first = (await js.stream_info(stream)).state.first_seq
                        if min(first, sequence) > expected:
                            self._expired(tenant, min(first, sequence) - expected)
                    self.counters["taken"] += tenant.deliver(
                        message.data.decode(), self._fallback(tenant))
                    await message.ack_sync(timeout=PUBLISH_WAIT)
                    expected = max(expected, sequence + 1)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(f"cannot take handed notifications of tenant {name} from NATS "
                         f"JetStream: {self._words(exc)}")
            self._wake.set()

    def _fallback(self, tenant: HandoffTenant) -> Callable[[str], KnownSubscription | None]:
        def fallback(subscription_id: str) -> KnownSubscription | None:
            # Not in this node's pool yet (a takeover): still a presence subscription here.
            tenant_id, app_id = tenant.names()
            if subscription_id not in self._stored or tenant_id is None:
                return None
            return KnownSubscription(subscription_id, "", tenant_id, app_id)
        return fallback

    def _expired(self, tenant: HandoffTenant, count: int) -> None:
        self.counters["expired"] += count
        log.warning("%d message(s) of notifications handed over for tenant %s expired before "
                    "this node took them: reading all its people back from Graph",
                    count, tenant.name)
        tenant.read_everyone()

    def _failed(self, error: str) -> None:
        if error != self.error:
            log.error("%s", error)
            self.since = self.clock.now()
        self.error = error

    def _shown_url(self) -> str:
        return mask_url_password(self.url)

    def _words(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return mask_url_password(text)

    def statuses(self) -> list[PartStatus]:
        """The part `webhook/handoff` (transport NATS): the database path's counters, with
        `listening` meaning connected with the streams in place."""
        counters = {"handed_off": self.counters["handed_off"], "taken": self.counters["taken"],
                    "expired": self.counters["expired"],
                    "backlog": sum(self.backlog.values()), "listening": int(self.listening),
                    "pulling": len(self._pulling)}
        error = self.error or self.publish_error
        state = PartState.DEGRADED if error is not None else PartState.OK
        return [PartStatus("webhook/handoff", "handoff", state, self.since, error,
                           FIX if error else None, counters)]
