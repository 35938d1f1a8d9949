"""A change-notification subscription on `users` that starts a directory change round at
once (issue 18, item 10).

The delta rounds (sync/directory_delta.py) find every change within `changes_interval`;
with a public URL, Graph also tells us within seconds that some user changed (application
permission `User.Read.All`, change types `updated,deleted`, at most 41,760 minutes:
graph.md 4.3, 4.4), and the notification only wakes the next round: what changed is read
from `/users/delta`, so a lost or late notification costs nothing but time.

One task owns the subscription (design.md rule 3): it clears what an earlier run of this
installation left (same resource and notification URL: the client state was not kept),
creates one, renews it well before it lapses, recreates it when Graph lost it, and answers
lifecycle events. Its failures are shown, never fatal: the rounds go on without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from m365pbx.clock import Clock
from m365pbx.graph.client import GraphClient
from m365pbx.graph.errors import M365Error, NotFound
from m365pbx.graph.subscriptions import (
    Subscription,
    SubscriptionRequest,
    create_subscription,
    delete_subscription,
    expiry_for,
    list_subscriptions,
    reauthorize_subscription,
    renew_subscription,
)
from m365pbx.pbx.sip.retry import Backoff
from m365pbx.sync.teams_to_pbx.receiver import KnownSubscription

log = logging.getLogger(__name__)

RESOURCE = "users"
CHANGE_TYPES = "updated,deleted"
KIND = "users"
# Shorter than Graph's 29 days: a subscription left behind by a crash lapses within a day.
LIFETIME = timedelta(days=1)
RENEW_MARGIN = timedelta(hours=6)
FAILURE_BACKOFF = Backoff(initial=30.0, maximum=900.0)


class UsersSubscription:
    """Owns one tenant's subscription on `users`; its notifications call `on_change`."""

    def __init__(self, client: GraphClient, clock: Clock, *, notification_url: str,
                 lifecycle_url: str | None, tenant_id: str, app_id: str,
                 on_change: Callable[[], None], lifetime: timedelta = LIFETIME,
                 renew_margin: timedelta = RENEW_MARGIN) -> None:
        self.client = client
        self.clock = clock
        self.notification_url = notification_url
        self.lifecycle_url = lifecycle_url
        self.tenant_id = tenant_id
        self.app_id = app_id
        self.on_change = on_change
        self.lifetime = lifetime
        self.renew_margin = renew_margin
        self.current: Subscription | None = None
        self.notifications = 0
        self.last_error: str | None = None
        self.since: datetime | None = None
        self._client_state = ""
        self._wake = asyncio.Event()
        self._events: list[str] = []
        self._failures = 0

    # --- messages from the receiver -----------------------------------------------------------
    def known(self, subscription_id: str) -> KnownSubscription | None:
        """The receiver's view of our subscription, if it has this id."""
        current = self.current
        if current is None or current.id != subscription_id:
            return None
        return KnownSubscription(current.id, self._client_state, self.tenant_id, self.app_id,
                                 KIND)

    def notified(self) -> None:
        """Graph said some user changed: a change round now."""
        self.notifications += 1
        self.on_change()

    def lifecycle(self, event: str) -> None:
        """Graph sent a lifecycle event for our subscription."""
        self._events.append(event)
        self._wake.set()

    # --- the owner's loop -----------------------------------------------------------------------
    async def run(self) -> None:
        """Keep the subscription alive until cancelled; delete it on the way out."""
        try:
            await self._clear_leftovers()
            while True:
                wait = await self._step()
                await self._sleep(wait)
        finally:
            if self.current is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(delete_subscription(self.client, self.current.id),
                                           timeout=5)

    async def _step(self) -> float:
        """One look at the subscription; how long until the next."""
        now = self.clock.now()
        events, self._events = self._events, []
        try:
            if self.current is not None and "subscriptionRemoved" in events:
                self.current = None
            if self.current is not None and "reauthorizationRequired" in events:
                # Graph lends the subscription the lifetime of the token it is reauthorized
                # with; the cached one may be nearly spent, and Graph would ask again at once.
                await self.client.tokens.invalidate()
                await reauthorize_subscription(self.client, self.current.id)
            if self.current is None:
                await self._create(now)
            elif self.current.expires - now <= self.renew_margin:
                await self._renew(now)
        except M365Error as exc:
            self._failures += 1
            if self.last_error is None:
                self.since = now
            self.last_error = f"users change notifications: {exc.describe()}"
            log.warning("%s; directory changes still show within the change interval",
                        self.last_error)
            return FAILURE_BACKOFF.delay(self._failures - 1)
        self._failures = 0
        self.last_error = self.since = None
        assert self.current is not None
        due = self.current.expires - self.renew_margin - self.clock.now()
        return max(due.total_seconds(), 1.0)

    async def _create(self, now: datetime) -> None:
        client_state = secrets.token_urlsafe(32)
        created = await create_subscription(self.client, SubscriptionRequest(
            resource=RESOURCE, notification_url=self.notification_url,
            expires=expiry_for(now, self.lifetime, self.client.clock_skew),
            client_state=client_state, change_type=CHANGE_TYPES,
            lifecycle_url=self.lifecycle_url))
        self._client_state = client_state
        self.current = created
        log.info("users change notifications: subscription %s until %s", created.id,
                 created.expires.isoformat())

    async def _renew(self, now: datetime) -> None:
        assert self.current is not None
        try:
            self.current = await renew_subscription(
                self.client, self.current.id,
                expiry_for(now, self.lifetime, self.client.clock_skew))
        except NotFound:  # Graph lost it (or it lapsed): a new one
            self.current = None
            await self._create(now)

    async def _clear_leftovers(self) -> None:
        try:
            found = await list_subscriptions(self.client)
            for subscription in found:
                if (subscription.resource.strip("/").casefold() == RESOURCE
                        and subscription.notification_url == self.notification_url):
                    await delete_subscription(self.client, subscription.id)
                    log.info("users change notifications: removed subscription %s left by an "
                             "earlier run", subscription.id)
        except M365Error as exc:  # it lapses by itself within LIFETIME
            log.warning("users change notifications: cannot clear earlier subscriptions: %s",
                        exc.describe())

    async def _sleep(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            woken.cancel()
        self._wake.clear()

    def health(self) -> dict[str, Any]:
        """What /healthz shows of the subscription."""
        current = self.current
        return {"subscription": None if current is None else current.id,
                "expires": None if current is None else current.expires.isoformat(),
                "notifications": self.notifications, "error": self.last_error,
                "since": None if self.since is None else self.since.isoformat()}
