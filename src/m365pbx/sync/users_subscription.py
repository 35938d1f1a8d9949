"""A change-notification subscription on `users` that starts a directory change round at
once (issue 18, item 10).

The delta rounds (sync/directory_delta.py) find every change within `changes_interval`;
with a public URL, Graph also tells us within seconds that some user changed (application
permission `User.Read.All`, change types `updated,deleted`, at most 41,760 minutes:
graph.md 4.3, 4.4), and the notification only wakes the next round: what changed is read
from `/users/delta`, so a lost or late notification costs nothing but time.

One task owns the subscription (design.md rule 3): it creates one, renews it well before
it lapses, recreates it when Graph lost it, and answers lifecycle events. Its failures are
shown, never fatal: the rounds go on without it.

With `records` (the store) the subscription is kept with its client state, like the
presence and mailbox ones: a restart, or another node taking the tenant over, resumes the
kept one when Graph still lists it with our URL (renewed when due) instead of making a new
one, and any node can check its notifications (docs/cluster.md). At stop it stays. What
else Graph lists on `users` with our URL (left by a crash before it was kept, or without
a store) is deleted at start.
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
from m365pbx.sync.mailbox_records import MailboxRecord, MailboxRecords
from m365pbx.sync.teams_to_pbx.receiver import KnownSubscription

log = logging.getLogger(__name__)

RESOURCE = "users"
CHANGE_TYPES = "updated,deleted"
KIND = "users"
# Shorter than Graph's 29 days: a subscription left behind by a crash lapses within a day.
LIFETIME = timedelta(days=1)
RENEW_MARGIN = timedelta(hours=6)
FAILURE_BACKOFF = Backoff(initial=30.0, maximum=900.0)
# The one record of a tenant's users subscription (a mailbox record's "person").
RECORD_KEY = ""


class UsersSubscription:
    """Owns one tenant's subscription on `users`; its notifications call `on_change`."""

    def __init__(self, client: GraphClient, clock: Clock, *, notification_url: str,
                 lifecycle_url: str | None, tenant_id: str, app_id: str,
                 on_change: Callable[[], None], lifetime: timedelta = LIFETIME,
                 renew_margin: timedelta = RENEW_MARGIN,
                 records: MailboxRecords | None = None) -> None:
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
        self._check = False  # taken over without Graph's word that it still has it
        self.records = records
        self.resumed = 0  # kept subscriptions taken over at start
        self.save_error: str | None = None

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
        """Keep the subscription alive until cancelled; on the way out keep it for the next
        start (or node), or without a store delete it."""
        try:
            await self._resume()
            while True:
                wait = await self._step()
                await self._sleep(wait)
        finally:
            current, self.current = self.current, None  # not ours to answer any more
            if current is not None and self.records is None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(delete_subscription(self.client, current.id),
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
            elif self._check or self.current.expires - now <= self.renew_margin:
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
        await self._save()

    async def _renew(self, now: datetime) -> None:
        assert self.current is not None
        try:
            renewed = await renew_subscription(
                self.client, self.current.id,
                expiry_for(now, self.lifetime, self.client.clock_skew))
        except NotFound:  # Graph lost it (or it lapsed): a new one
            self.current = None
            self._check = False
            await self._create(now)
            return
        self._check = False
        if renewed.notification_url and renewed.notification_url != self.notification_url:
            # A kept one delivering to an earlier public URL: replaced.
            with contextlib.suppress(M365Error):
                await delete_subscription(self.client, renewed.id)
            self.current = None
            await self._create(now)
            return
        self.current = renewed
        await self._save()

    async def _resume(self) -> None:
        """Take over the kept subscription if Graph still has it; delete our leftovers."""
        now = self.clock.now()
        kept = await self._load()
        try:
            found = await list_subscriptions(self.client)
        except M365Error as exc:  # our leftovers lapse by themselves within LIFETIME
            log.warning("users change notifications: cannot list earlier subscriptions: %s",
                        exc.describe())
            if kept is not None and kept.expires > now:
                # Known at once; renewed at the first step, which tells whether Graph has it.
                self._take(Subscription(kept.graph_id, kept.resource, kept.expires,
                                        notification_url=self.notification_url), kept)
                self._check = True
            return
        for subscription in found:
            if (subscription.resource.strip("/").casefold() != RESOURCE
                    or subscription.notification_url != self.notification_url):
                continue
            if kept is not None and subscription.id == kept.graph_id and (
                    subscription.expires > now and self.current is None):
                self._take(subscription, kept)
                continue
            with contextlib.suppress(M365Error):  # it lapses by itself within LIFETIME
                await delete_subscription(self.client, subscription.id)
                log.info("users change notifications: removed subscription %s left by an "
                         "earlier run", subscription.id)
        if kept is not None and self.current is None:
            log.info("users change notifications: the kept subscription %s is gone from "
                     "Graph; a new one is made", kept.graph_id)

    def _take(self, subscription: Subscription, kept: MailboxRecord) -> None:
        self.current = subscription
        self._client_state = kept.client_state
        self.resumed += 1
        log.info("users change notifications: subscription %s taken over, until %s",
                 subscription.id, subscription.expires.isoformat())

    async def _load(self) -> MailboxRecord | None:
        if self.records is None:
            return None
        try:
            found = await self.records.load()
        except Exception as exc:  # made anew, as without a store
            self.save_error = f"cannot read the kept subscription: {_reason(exc)}"
            log.warning("users change notifications: %s; a new one is made", self.save_error)
            return None
        return next((r for r in found if r.user_id == RECORD_KEY), None)

    async def _save(self) -> None:
        """Keep the current subscription in the store (a failure is shown, never fatal:
        the next start, or node, makes a new one then)."""
        current = self.current
        if self.records is None or current is None:
            return
        try:
            await self.records.save([MailboxRecord(RECORD_KEY, current.id, RESOURCE,
                                                   current.expires, self._client_state)], [])
        except Exception as exc:
            self.save_error = f"cannot keep the subscription in the store: {_reason(exc)}"
            log.warning("users change notifications: %s (other nodes ignore its notifications "
                        "until it is kept)", self.save_error)
            return
        if self.save_error is not None:
            log.info("users change notifications: kept in the store again")
        self.save_error = None

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
                "notifications": self.notifications, "resumed": self.resumed,
                "error": self.last_error or self.save_error,
                "since": None if self.since is None else self.since.isoformat()}


def _reason(exc: BaseException) -> str:
    """The first line of a failure, the driver's own words where SQLAlchemy wrapped them."""
    cause = getattr(exc, "orig", None) or exc
    text = (str(cause).splitlines() or [""])[0][:200]
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__
