"""Change notifications on one Outlook resource per followed person (events, contacts).

A notification only makes the person's reader read them again at once (what changed is
read from Graph, so a lost or late notification costs time, never correctness). Graph keeps
such a subscription at most 4,230 minutes (graph.md 4.3); ours last a day and are renewed
six hours ahead.

Each subscription is kept in the store (`records`, with its client state), so a restart
takes it over instead of deleting and making it again (50,000 people: 100,000 creates, each
waiting for Graph to validate our URL, about half an hour with notifications lost
meanwhile). At start the kept ones Graph still lists with our URL are used as they are
(renewed when due); those it no longer has are made again; subscriptions with our URL that
are not kept (a crash before they were saved, a lost database) are deleted, as is a kept one
delivering to another URL. At stop they stay: the next start takes them over.

One task owns every subscription of a tenant and resource (design.md rule 3): it creates
them for new people, deletes those of people no longer followed, renews, answers lifecycle
events (`subscriptionRemoved`: a new one; `reauthorizationRequired`: reauthorize; `missed`:
read again), and shows its failures without stopping the reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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

CHANGE_TYPES = "created,updated,deleted"
LIFETIME = timedelta(days=1)
RENEW_MARGIN = timedelta(hours=6)
RETRY_AFTER = 300.0
# Renewals due within this go with those due now: one look at 50,000 subscriptions renews
# a batch, not one each.
RENEW_SLACK = timedelta(minutes=10)
# A reauthorization lends the subscription the lifetime of the token it is made with: one
# cached for most of its hour would leave Graph asking again at once (the simulator asked
# once a minute for ten minutes of every hour). A fresh token is fetched for the first
# challenge of a wave, at most this often.
FRESH_TOKEN_EVERY = 600.0
# Subscription requests in flight at once, each for a different mailbox. A create waits for
# Graph to validate our URL (about a second): 32 at once make 50,000 in about half an hour.
CONCURRENT = 32
# Changes are written this long (wall time) after the first: a burst of creates is one write.
SAVE_DELAY = 1.0
SAVE_BACKOFF = Backoff(initial=1.0, maximum=60.0)


@dataclass
class _Held:
    user_id: str
    subscription: Subscription | None = None
    client_state: str = field(default="", repr=False)
    retry_at: float = 0.0
    error: str | None = None
    # Taken over from the store without Graph's word that it still has it: renewed at once.
    check: bool = False


class MailboxSubscriptions:
    """Keeps a subscription on `users/{id}/<tail>` of each followed person; notifications
    make `read_now` read that person again."""

    def __init__(self, client: GraphClient, clock: Clock, *, kind: str, tail: str,
                 wanted: Callable[[], Mapping[str, str]], read_now: Callable[[str], None],
                 notification_url: str, lifecycle_url: str | None, tenant_id: str,
                 app_id: str, lifetime: timedelta = LIFETIME,
                 renew_margin: timedelta = RENEW_MARGIN,
                 records: MailboxRecords | None = None) -> None:
        self.client = client
        self.clock = clock
        self.kind = kind
        self.tail = tail
        # Lower-case user id → the user id to subscribe with, for everyone to follow now.
        self.wanted = wanted
        self.read_now = read_now
        self.notification_url = notification_url
        self.lifecycle_url = lifecycle_url
        self.tenant_id = tenant_id
        self.app_id = app_id
        self.lifetime = lifetime
        self.renew_margin = renew_margin
        self.notifications = 0
        # Where the subscriptions are kept across restarts (None: deleted at stop instead).
        self.records = records
        # Whether `wanted` says who is followed yet: until the directory has matched the
        # people once, a subscription taken over is kept (and renewed), never deleted.
        self.settled: Callable[[], bool] = lambda: True
        self.restored = 0  # taken over at start
        self.writes = 0  # successful writes to the store
        self.save_error: str | None = None
        self._unsaved: set[str] = set()  # lower-case user ids whose record changed
        self._save_wake = asyncio.Event()
        self._held: dict[str, _Held] = {}  # by lower-case user id
        self._by_id: dict[str, str] = {}  # subscription id → lower-case user id
        self._events: list[tuple[str, str]] = []
        self._wake = asyncio.Event()
        self._fresh_token_at: float | None = None

    def resource(self, user_id: str) -> str:
        """The resource of one person's subscription."""
        return f"users/{user_id}/{self.tail}"

    def wake(self) -> None:
        """Look at who is followed now (the people changed)."""
        self._wake.set()

    # --- messages from the receiver -----------------------------------------------------------
    def known(self, subscription_id: str) -> KnownSubscription | None:
        """The receiver's view of one of our subscriptions, if it has this id."""
        uid = self._by_id.get(subscription_id)
        held = None if uid is None else self._held.get(uid)
        if held is None or held.subscription is None:
            return None
        return KnownSubscription(subscription_id, held.client_state, self.tenant_id,
                                 self.app_id, self.kind)

    def notified(self, subscription_id: str) -> None:
        """Graph said the person's resource changed: read them now."""
        uid = self._by_id.get(subscription_id)
        if uid is not None:
            self.notifications += 1
            self.read_now(uid)

    def lifecycle(self, subscription_id: str, event: str) -> None:
        """Graph sent a lifecycle event for one of our subscriptions."""
        uid = self._by_id.get(subscription_id)
        if uid is None:
            return
        if event == "missed":
            self.read_now(uid)  # what the lost notifications said, read back
            return
        self._events.append((uid, event))
        self._wake.set()

    def covers(self, uid: str) -> bool:
        """Whether notifications flow for this person (the reader reads them rarely then)."""
        held = self._held.get(uid)
        return held is not None and held.subscription is not None

    # --- the owner's loop -----------------------------------------------------------------------
    async def run(self) -> None:
        """Keep every followed person subscribed until cancelled; on the way out, save what
        changed (kept for the next start), or without a store delete them."""
        saver = None
        try:
            await self._restore()
            if self.records is not None:
                saver = asyncio.ensure_future(self._save_loop())
            limit = asyncio.Semaphore(CONCURRENT)
            while True:
                wait = await self._step(limit)
                await self._sleep(wait)
        finally:
            if saver is not None:
                saver.cancel()
                await asyncio.gather(saver, return_exceptions=True)
            await self._stop()

    async def _stop(self) -> None:
        if self.records is not None:
            try:
                await asyncio.wait_for(self._save(), timeout=5)
            except Exception as exc:  # the next start deletes what was not saved
                log.warning("%s change notifications: cannot save the subscriptions at stop: "
                            "%s", self.kind, _reason(exc))
            # Kept for the next start or node: not ours to answer any more (on several
            # nodes, the one running the tenant now gets their notifications handed over).
            self._held.clear()
            self._by_id.clear()
            self._unsaved.clear()
            return
        ids = [h.subscription.id for h in self._held.values() if h.subscription is not None]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(
                *(delete_subscription(self.client, sid) for sid in ids),
                return_exceptions=True), timeout=5)

    async def _step(self, limit: asyncio.Semaphore) -> float:
        """One look at every subscription; how long until the next."""
        wanted = dict(self.wanted())
        for uid in set(self._held) - set(wanted) if self.settled() else ():
            gone = self._held.pop(uid)
            self._changed(uid)
            if gone.subscription is not None:
                self._by_id.pop(gone.subscription.id, None)
                with contextlib.suppress(M365Error):
                    await delete_subscription(self.client, gone.subscription.id)
        for uid, user_id in wanted.items():
            held = self._held.get(uid)
            if held is None:
                self._held[uid] = _Held(user_id)
            else:
                held.user_id = user_id  # one taken over knows it in lower case only
        events, self._events = self._events, []
        for uid, event in events:
            held = self._held.get(uid)
            if held is None or held.subscription is None:
                continue
            if event == "subscriptionRemoved":
                self._by_id.pop(held.subscription.id, None)
                held.subscription = None
                held.retry_at = 0.0
                self._changed(uid)
                self.read_now(uid)  # changes since it was removed
            elif event == "reauthorizationRequired":
                with contextlib.suppress(M365Error):
                    await self._fresh_token()
                    await reauthorize_subscription(self.client, held.subscription.id)
        now = self.clock.now()
        due = [held for held in self._held.values() if self._due(held, now)]
        await asyncio.gather(*(self._keep(held, limit) for held in due))
        return self._next_wait()

    def _due(self, held: _Held, now: datetime) -> bool:
        if held.retry_at > now.timestamp():
            return False
        return held.subscription is None or held.check or (
            held.subscription.expires - now <= self.renew_margin + RENEW_SLACK)

    def _next_wait(self) -> float:
        now = self.clock.now()
        times = []
        for held in self._held.values():
            if held.subscription is None or held.check:
                times.append(held.retry_at - now.timestamp())
            else:
                times.append((held.subscription.expires - self.renew_margin - now)
                             .total_seconds())
        return max(min(times, default=3600.0), 1.0)

    async def _keep(self, held: _Held, limit: asyncio.Semaphore) -> None:
        async with limit:
            now = self.clock.now()
            try:
                if held.subscription is None:
                    await self._create(held, now)
                else:
                    await self._renew(held, now)
                held.error = None
                held.check = False
            except M365Error as exc:
                held.error = exc.describe()
                held.retry_at = now.timestamp() + RETRY_AFTER
                if held.subscription is None:
                    self.read_now(held.user_id.lower())  # back to polling's pace
                log.warning("%s change notifications for %s: %s; read every poll interval "
                            "meanwhile", self.kind, held.user_id, held.error)

    async def _renew(self, held: _Held, now: datetime) -> None:
        assert held.subscription is not None
        uid = held.user_id.lower()
        try:
            renewed = await renew_subscription(
                self.client, held.subscription.id,
                expiry_for(now, self.lifetime, self.client.clock_skew))
        except NotFound:  # Graph lost it (or it lapsed): a new one
            self._by_id.pop(held.subscription.id, None)
            held.subscription = None
            self._changed(uid)
            await self._create(held, now)
            self.read_now(uid)
            return
        if renewed.notification_url and renewed.notification_url != self.notification_url:
            # Taken over from the store, but delivering to an earlier public URL.
            with contextlib.suppress(M365Error):
                await delete_subscription(self.client, renewed.id)
            self._by_id.pop(held.subscription.id, None)
            held.subscription = None
            self._changed(uid)
            await self._create(held, now)
            self.read_now(uid)
            return
        held.subscription = renewed
        self._changed(uid)

    async def _fresh_token(self) -> None:
        now = self.clock.now().timestamp()
        if self._fresh_token_at is None or now - self._fresh_token_at >= FRESH_TOKEN_EVERY:
            self._fresh_token_at = now
            await self.client.tokens.invalidate()

    async def _create(self, held: _Held, now: datetime) -> None:
        client_state = secrets.token_urlsafe(32)
        created = await create_subscription(self.client, SubscriptionRequest(
            resource=self.resource(held.user_id), notification_url=self.notification_url,
            expires=expiry_for(now, self.lifetime, self.client.clock_skew),
            client_state=client_state, change_type=CHANGE_TYPES,
            lifecycle_url=self.lifecycle_url))
        held.client_state = client_state
        held.subscription = created
        self._by_id[created.id] = held.user_id.lower()
        self._changed(held.user_id.lower())

    # --- taken over at start, kept in the store -------------------------------------------------
    async def _restore(self) -> None:
        """Take over the kept subscriptions Graph still has; delete our other leftovers."""
        now = self.clock.now()
        for record in await self._load():
            if record.expires <= now:
                self._changed(record.user_id)
                continue
            # Known at once: notifications for it are accepted while Graph is asked.
            self._held[record.user_id] = _Held(
                record.user_id, Subscription(record.graph_id, record.resource, record.expires,
                                             notification_url=self.notification_url),
                record.client_state, check=True)
            self._by_id[record.graph_id] = record.user_id
        try:
            found = await list_subscriptions(self.client)
        except M365Error as exc:  # our leftovers lapse by themselves within LIFETIME
            self.restored = len(self._held)
            log.warning("%s change notifications: cannot list earlier subscriptions (%s); the "
                        "%d kept ones are checked by renewing them", self.kind, exc.describe(),
                        len(self._held))
            return
        listed = {s.id: s for s in found}
        elsewhere: list[str] = []
        lost = 0
        for uid, held in list(self._held.items()):
            assert held.subscription is not None
            there = listed.get(held.subscription.id)
            if there is not None and there.expires > now and (
                    not there.notification_url or there.notification_url == self.notification_url):
                held.subscription = there
                held.check = False
                continue
            if there is not None:
                elsewhere.append(there.id)  # ours, but for an earlier public URL
            lost += 1
            del self._held[uid]
            self._by_id.pop(held.subscription.id, None)
            self._changed(uid)
        self.restored = len(self._held)
        leftovers = [s.id for s in found if self._ours(s) and s.id not in self._by_id]
        await self._delete_all(leftovers + elsewhere)
        log.info("%s change notifications: %d subscriptions taken over, %d to make again "
                 "(Graph no longer has them), %d left by an earlier run removed", self.kind,
                 self.restored, lost, len(leftovers) + len(elsewhere))

    def _ours(self, subscription: Subscription) -> bool:
        resource = subscription.resource.strip("/").casefold()
        return (resource.startswith("users/") and resource.endswith(f"/{self.tail}")
                and subscription.notification_url == self.notification_url)

    async def _delete_all(self, leftovers: list[str]) -> None:
        # One per followed person of the earlier run: deleted side by side, not one by one.
        pending = iter(leftovers)

        async def worker() -> None:
            for subscription_id in pending:
                with contextlib.suppress(M365Error):
                    await delete_subscription(self.client, subscription_id)

        await asyncio.gather(*(worker() for _ in range(min(CONCURRENT, len(leftovers)))))

    async def _load(self) -> list[MailboxRecord]:
        if self.records is None:
            return []
        try:
            return await self.records.load()
        except Exception as exc:  # made anew, as without a store
            self.save_error = f"cannot read the kept subscriptions: {_reason(exc)}"
            log.warning("%s change notifications: %s; every subscription is made anew",
                        self.kind, self.save_error)
            return []

    def _changed(self, uid: str) -> None:
        if self.records is not None:
            self._unsaved.add(uid)
            self._save_wake.set()

    async def _save(self) -> None:
        """Write the records that changed: the held subscription, or none (forgotten)."""
        if self.records is None or not self._unsaved:
            return
        pending, self._unsaved = self._unsaved, set()
        keep: list[MailboxRecord] = []
        forget: list[str] = []
        for uid in pending:
            held = self._held.get(uid)
            if held is None or held.subscription is None:
                forget.append(uid)
            else:
                keep.append(MailboxRecord(uid, held.subscription.id,
                                          self.resource(held.user_id),
                                          held.subscription.expires, held.client_state))
        try:
            await self.records.save(keep, forget)
        except BaseException:
            self._unsaved |= pending  # written from the state of then, next time
            raise
        self.writes += 1

    async def _save_loop(self) -> None:
        failures = 0
        while True:
            await self._save_wake.wait()
            self._save_wake.clear()
            await asyncio.sleep(SAVE_DELAY)
            try:
                await self._save()
            except Exception as exc:
                self.save_error = _reason(exc)
                log.warning("%s change notifications: cannot keep %d subscriptions in the "
                            "store (trying again; a restart makes those anew): %s", self.kind,
                            len(self._unsaved), self.save_error)
                await self.clock.sleep(SAVE_BACKOFF.delay(failures))
                failures += 1
                self._save_wake.set()
            else:
                if self.save_error is not None:
                    log.info("%s change notifications: kept in the store again", self.kind)
                failures = 0
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
        """What /healthz shows: subscriptions per state, notifications, the first error."""
        active = sum(1 for h in self._held.values() if h.subscription is not None)
        failing = [h for h in self._held.values() if h.error is not None]
        error = None
        if failing:
            error = (f"{failing[0].user_id}: {failing[0].error}"
                     + (f" (and {len(failing) - 1} more)" if len(failing) > 1 else ""))
        elif self.save_error is not None:
            error = (f"cannot keep the subscriptions in the store (a restart makes them "
                     f"anew): {self.save_error}")
        return {"active": active, "missing": len(self._held) - active,
                "notifications": self.notifications, "restored": self.restored,
                "error": error}


def _reason(exc: BaseException) -> str:
    """The first line of a failure, the driver's own words where SQLAlchemy wrapped them."""
    cause = getattr(exc, "orig", None) or exc
    text = (str(cause).splitlines() or [""])[0][:200]
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__
