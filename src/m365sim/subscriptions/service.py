"""State and behaviour of the simulator's subscriptions part: the subscriptions, the changes
they match, and their lifecycle on the simulator's clock."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from m365sim.auth import Caller
from m365sim.errors import GraphError
from m365sim.events import ResourceChange
from m365sim.subscriptions import bodies
from m365sim.subscriptions.crypto import EncryptionCertificate, ValidationTokens
from m365sim.subscriptions.delivery import Dispatcher, Pending
from m365sim.subscriptions.handshake import HandshakeFailed, validate_endpoint
from m365sim.subscriptions.model import Subscription
from m365sim.subscriptions.payloads import change_item, lifecycle_item
from m365sim.subscriptions.resources import (
    Kind,
    Target,
    change_key,
    check_permission,
    parse_change_types,
    parse_resource,
)
from m365sim.subscriptions.settings import DeliverySettings

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

_ALL = "*"


def _not_found(subscription_id: str) -> GraphError:
    # Chosen wording; Graph answers 404 for an unknown or expired subscription (graph.md 4.2).
    return GraphError(404, "ResourceNotFound",
                      f"The subscription '{subscription_id}' was not found.")


class SubscriptionService:
    """The subscriptions part of the simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.settings = DeliverySettings.from_extra(sim.settings.extra)
        self.subscriptions: dict[str, Subscription] = {}
        self._index: dict[tuple[str, Kind, str], set[str]] = defaultdict(set)
        self._transport: httpx.AsyncBaseTransport | None = None
        self._http: httpx.AsyncClient | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._missed_sent: dict[str, datetime] = {}
        self.tokens = ValidationTokens(sim.issuer)
        self.dispatcher = Dispatcher(sim.clock, self.settings, self.tokens, self.http,
                                     self._wanted, self._dropped)
        sim.bus.listen(self.on_change)

    # -- HTTP client ----------------------------------------------------------------------

    @property
    def transport(self) -> httpx.AsyncBaseTransport | None:
        """The transport deliveries use (None: real HTTP); tests plug in httpx.ASGITransport."""
        return self._transport

    @transport.setter
    def transport(self, transport: httpx.AsyncBaseTransport | None) -> None:
        old, self._http, self._transport = self._http, None, transport
        if old is not None:
            with contextlib.suppress(RuntimeError):
                closing = asyncio.get_running_loop().create_task(old.aclose())
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)

    def http(self) -> httpx.AsyncClient:
        """The one HTTP client for validation requests and deliveries."""
        if self._http is None:
            verify: ssl.SSLContext | bool = self.settings.verify_tls
            if self.settings.ca_file:
                verify = ssl.create_default_context(cafile=self.settings.ca_file)
            self._http = httpx.AsyncClient(transport=self._transport, verify=verify,
                                           timeout=30.0, follow_redirects=False)
        return self._http

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._http is not None:
            client, self._http = self._http, None
            await client.aclose()

    async def run(self) -> None:
        """Deliver notifications and run lifecycle timers on the simulator's clock."""
        try:
            await self.dispatcher.run()
        finally:
            await self.aclose()

    # -- Graph operations -----------------------------------------------------------------

    async def create(self, caller: Caller, body: Any) -> Subscription:
        """POST /subscriptions: check, validate the endpoints, then create."""
        request = bodies.parse_create(body, allow_http_loopback=self.settings.allow_http_loopback)
        target = parse_resource(request.resource, caller)
        check_permission(target, caller)
        change_types = parse_change_types(request.change_type, target)
        self._check_expiration(request.expiration, target)
        certificate = None
        if request.include_resource_data:
            if not target.rule.rich:
                raise GraphError(400, "InvalidRequest", "includeResourceData is not supported "
                                 "for this resource.")
            certificate = EncryptionCertificate.parse(request.certificate_text or "")
        self._check_presence_conflict(caller, target)
        await self._validate(request.notification_url)
        if request.lifecycle_url is not None:
            await self._validate(request.lifecycle_url)
        self._check_presence_conflict(caller, target)
        now = self.sim.clock.now()
        subscription = Subscription(
            id=str(uuid.uuid4()), tenant_id=caller.tenant.id, app_id=caller.app.app_id,
            creator_id=caller.user.id if caller.user else caller.app.service_principal_id,
            user_id=caller.user.id if caller.user else None, resource=request.resource,
            target=target, change_type=request.change_type, change_types=change_types,
            notification_url=request.notification_url, lifecycle_url=request.lifecycle_url,
            expiration=request.expiration, client_state=request.client_state,
            include_resource_data=request.include_resource_data, certificate=certificate,
            certificate_text=request.certificate_text, certificate_id=request.certificate_id,
            tls_version=request.tls_version, created_at=now,
            authorized_until=min(caller.token_expires, request.expiration),
        )
        self._add(subscription)
        self._schedule(subscription)
        return subscription

    async def update(self, caller: Caller, subscription_id: str, body: Any) -> Subscription:
        """PATCH /subscriptions/{id}: renew, move the URL or rotate the certificate."""
        subscription = self.owned(caller, subscription_id, write=True)
        request = bodies.parse_update(body, allow_http_loopback=self.settings.allow_http_loopback,
                                      has_lifecycle_url=subscription.lifecycle_url is not None)
        check_permission(subscription.target, caller)
        if request.expiration is not None:
            self._check_expiration(request.expiration, subscription.target)
        certificate = None
        if request.certificate_text is not None or request.certificate_id is not None:
            if not subscription.include_resource_data:
                raise GraphError(400, "InvalidRequest", "The subscription does not include "
                                 "resource data; it has no encryption certificate to update.")
            certificate = EncryptionCertificate.parse(request.certificate_text or
                                                      subscription.certificate_text or "")
        url = request.notification_url
        if url is not None and url != subscription.notification_url:
            await self._validate(url)
        subscription = self.owned(caller, subscription_id, write=True)
        if url is not None:
            subscription.notification_url = url
        if certificate is not None:
            subscription.certificate = certificate
            if request.certificate_text is not None:
                subscription.certificate_text = request.certificate_text
            if request.certificate_id is not None:
                subscription.certificate_id = request.certificate_id
        if request.expiration is not None:
            subscription.expiration = request.expiration
        self._authorize(subscription, caller)
        return subscription

    def delete(self, caller: Caller, subscription_id: str) -> None:
        """DELETE /subscriptions/{id}."""
        self._remove(self.owned(caller, subscription_id, write=True))

    def reauthorize(self, caller: Caller, subscription_id: str) -> None:
        """POST /subscriptions/{id}/reauthorize: authorize again without extending."""
        subscription = self.owned(caller, subscription_id, write=True)
        check_permission(subscription.target, caller)
        self._authorize(subscription, caller)

    def visible(self, caller: Caller) -> list[Subscription]:
        """GET /subscriptions: what this caller may list (graph.md 4.2)."""
        return [s for s in self._live() if self._may_see(caller, s, write=False)]

    def owned(self, caller: Caller, subscription_id: str, *, write: bool) -> Subscription:
        """A live subscription the caller may read (or change), else 404."""
        subscription = self.subscriptions.get(subscription_id)
        if (subscription is None or not subscription.live(self.sim.clock.now())
                or not self._may_see(caller, subscription, write=write)):
            raise _not_found(subscription_id)
        return subscription

    # -- checks ---------------------------------------------------------------------------

    def _check_expiration(self, expiration: datetime, target: Target) -> None:
        now = self.sim.clock.now()
        if expiration <= now:
            raise GraphError(400, "InvalidRequest",
                             "Subscription expiration date and time must be in the future.")
        limit = target.rule.max_minutes
        if expiration - now > timedelta(minutes=limit):
            # Observed wording (microsoftgraph/microsoft-graph-docs-contrib#7726).
            raise GraphError(400, "ExtensionError",
                             f"Subscription expiration can only be {limit} minutes in the "
                             "future.")

    def _check_presence_conflict(self, caller: Caller, target: Target) -> None:
        if target.kind is not Kind.PRESENCE or caller.user is None:
            return
        for subscription in self._live():
            if (subscription.kind is Kind.PRESENCE and subscription.app_id == caller.app.app_id
                    and subscription.user_id == caller.user.id
                    and subscription.tenant_id == caller.tenant.id):
                # graph.md 4.4; fixtures/graph/subscription-conflict-presence.response.json
                # (the typos are Graph's).
                raise GraphError(409, "ExtensionError", "Operation: Create; Exception: [Status "
                                 "Code: Conflict; Reason: A subscripton already exists. It must "
                                 "be deleted before a another can be made.]")

    async def _validate(self, url: str) -> None:
        try:
            result = await validate_endpoint(self.http(), url,
                                             timeout_s=self.settings.validation_timeout_s)
        except HandshakeFailed as failed:
            self.dispatcher.record(kind="validation", url=url, outcome="failed", count=0,
                                   subscription_ids=[], status=failed.result.status,
                                   duration_ms=round(failed.result.duration_ms, 3),
                                   error=failed.message)
            raise
        self.dispatcher.record(kind="validation", url=url, outcome="delivered", count=0,
                               subscription_ids=[], status=result.status,
                               duration_ms=round(result.duration_ms, 3))

    def _may_see(self, caller: Caller, subscription: Subscription, *, write: bool) -> bool:
        if subscription.tenant_id != caller.tenant.id:
            return False
        if caller.user is None:
            return subscription.app_id == caller.app.app_id
        if subscription.user_id != caller.user.id:
            return False
        # Subscription.Read.All (delegated) lists the user's subscriptions of any app.
        return subscription.app_id == caller.app.app_id or (
            not write and "Subscription.Read.All" in caller.permissions)

    # -- the store ------------------------------------------------------------------------

    def _live(self) -> Iterable[Subscription]:
        now = self.sim.clock.now()
        return (s for s in self.subscriptions.values() if s.live(now))

    def _keys(self, subscription: Subscription) -> list[tuple[str, Kind, str]]:
        users = subscription.target.user_ids
        return [(subscription.tenant_id, subscription.kind, user)
                for user in (users if users is not None else (_ALL,))]

    def _add(self, subscription: Subscription) -> None:
        self.subscriptions[subscription.id] = subscription
        for key in self._keys(subscription):
            self._index[key].add(subscription.id)

    def _remove(self, subscription: Subscription) -> None:
        self.subscriptions.pop(subscription.id, None)
        self._missed_sent.pop(subscription.id, None)
        for key in self._keys(subscription):
            ids = self._index.get(key)
            if ids is not None:
                ids.discard(subscription.id)
                if not ids:
                    del self._index[key]

    # -- changes --------------------------------------------------------------------------

    def on_change(self, change: ResourceChange) -> None:
        """Queue a notification for every live subscription the change matches."""
        key = change_key(change)
        if key is None:
            return
        kind, user_id = key
        ids = list(self._index.get((change.tenant_id, kind, user_id), ()))
        if kind is Kind.USERS:
            ids.extend(self._index.get((change.tenant_id, kind, _ALL), ()))
        if not ids:
            return
        now = self.sim.clock.now()
        for subscription_id in ids:
            subscription = self.subscriptions.get(subscription_id)
            if (subscription is None or change.change_type not in subscription.change_types
                    or not subscription.live(now)):
                continue
            if subscription.paused(now):
                self.dispatcher.record(kind="notification", url=subscription.notification_url,
                                       outcome="paused", count=1,
                                       subscription_ids=[subscription.id],
                                       error="reauthorizationRequired was not answered")
                continue
            self._notify(subscription, change_item(subscription, change))

    def _latency(self) -> float:
        low, high = self.sim.settings.notification_latency_s
        return low if high <= low else self.dispatcher.rng.uniform(low, high)

    def _notify(self, subscription: Subscription, item: dict[str, Any]) -> None:
        rng, settings = self.dispatcher.rng, self.settings
        if settings.loss and rng.random() < settings.loss:
            self.dispatcher.record(kind="notification", url=subscription.notification_url,
                                   outcome="lost", count=1, subscription_ids=[subscription.id],
                                   error="injected loss")
            return
        copies = 2 if settings.duplicate and rng.random() < settings.duplicate else 1
        delay = self._latency()
        for _ in range(copies):
            self.dispatcher.enqueue(Pending(
                url=subscription.notification_url, kind="notification",
                subscription_id=subscription.id, item=item, app_id=subscription.app_id,
                tenant_id=subscription.tenant_id, rich=subscription.include_resource_data,
            ), delay)

    def _wanted(self, pending: Pending) -> bool:
        if pending.kind != "notification":
            return True
        subscription = self.subscriptions.get(pending.subscription_id)
        return subscription is not None and subscription.live(self.sim.clock.now())

    def _dropped(self, pending: Pending, reason: str) -> None:
        subscription = self.subscriptions.get(pending.subscription_id)
        if (pending.kind != "notification" or subscription is None
                or not subscription.target.rule.outlook):
            return
        # Outlook subscriptions hear of lost notifications through `missed` (graph.md 4.6);
        # chosen: at most once per throttling window.
        now = self.sim.clock.now()
        last = self._missed_sent.get(subscription.id)
        if last is None or (now - last).total_seconds() >= self.settings.throttle_window_s:
            self._missed_sent[subscription.id] = now
            self.send_lifecycle(subscription, "missed")

    # -- lifecycle ------------------------------------------------------------------------

    def send_lifecycle(self, subscription: Subscription, event: str) -> bool:
        """Queue a lifecycle notification; False when the subscription has no URL for it."""
        if subscription.lifecycle_url is None:
            return False
        self.dispatcher.enqueue(Pending(
            url=subscription.lifecycle_url, kind="lifecycle", subscription_id=subscription.id,
            item=lifecycle_item(subscription, event), app_id=subscription.app_id,
            tenant_id=subscription.tenant_id, rich=subscription.include_resource_data,
        ), self._latency())
        return True

    def request_reauthorization(self, subscription: Subscription, pause_after_s: float) -> bool:
        """Send reauthorizationRequired now; delivery pauses unless answered in time."""
        now = self.sim.clock.now()
        subscription.authorized_until = min(subscription.authorized_until,
                                            now + timedelta(seconds=pause_after_s))
        sent = self.send_lifecycle(subscription, "reauthorizationRequired")
        subscription.challenged = True
        self._schedule(subscription, challenge=False)
        return sent

    def remove_with_notice(self, subscription: Subscription) -> bool:
        """subscriptionRemoved: tell the subscriber (if it listens), then delete."""
        sent = self.send_lifecycle(subscription, "subscriptionRemoved")
        self._remove(subscription)
        return sent

    def _authorize(self, subscription: Subscription, caller: Caller) -> None:
        subscription.authorized_until = min(caller.token_expires, subscription.expiration)
        subscription.challenged = False
        self._schedule(subscription)

    def _schedule(self, subscription: Subscription, *, challenge: bool = True) -> None:
        subscription.timer_generation += 1
        generation, subscription_id = subscription.timer_generation, subscription.id
        self.dispatcher.call_at(subscription.expiration,
                                lambda: self._expire(subscription_id, generation))
        if challenge and subscription.lifecycle_url is not None:
            lead = timedelta(seconds=self.settings.reauthorization_lead_s)
            when = max(subscription.authorized_until - lead, self.sim.clock.now())
            self.dispatcher.call_at(when, lambda: self._challenge(subscription_id, generation))

    def _current(self, subscription_id: str, generation: int) -> Subscription | None:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None or subscription.timer_generation != generation:
            return None
        return subscription

    def _expire(self, subscription_id: str, generation: int) -> None:
        subscription = self._current(subscription_id, generation)
        if subscription is not None and not subscription.live(self.sim.clock.now()):
            # graph.md 4.2: an expired subscription is deleted; GET and PATCH answer 404.
            self._remove(subscription)
            self.dispatcher.record(kind="subscription", url=subscription.notification_url,
                                   outcome="expired", count=0,
                                   subscription_ids=[subscription.id])

    def _challenge(self, subscription_id: str, generation: int) -> None:
        subscription = self._current(subscription_id, generation)
        now = self.sim.clock.now()
        if subscription is None or not subscription.live(now):
            return
        self.send_lifecycle(subscription, "reauthorizationRequired")
        subscription.challenged = True
        following = now + timedelta(seconds=self.settings.reauthorization_interval_s)
        if following < subscription.authorized_until:
            self.dispatcher.call_at(following, lambda: self._challenge(subscription_id,
                                                                       generation))
