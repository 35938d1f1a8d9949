"""One service account's presence subscription, owned by exactly one task (design.md rule 3).

Graph allows one presence subscription per app and user, covering at most 650 people and
living at most 60 minutes (graph.md 4.3, 4.4). The owner creates it, renews it well before
it lapses, resumes it after a restart with a PATCH instead of waiting for it to expire
(innovaphone waits 10–12 minutes), recreates it when the people change or Graph lost it,
and says in words what is wrong when it cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from m365pbx.clock import Clock
from m365pbx.graph.certificates import NotificationCertificate
from m365pbx.graph.client import GraphClient
from m365pbx.graph.errors import Conflict, GraphError, M365Error, NotFound, SignInError
from m365pbx.graph.subscriptions import (
    PRESENCE_MAX_LIFETIME,
    Subscription,
    SubscriptionRequest,
    create_subscription,
    delete_subscription,
    expiry_for,
    expiry_refused,
    list_subscriptions,
    presence_resource,
    reauthorize_subscription,
    renew_subscription,
)
from m365pbx.pbx.base import ConnectionState
from m365pbx.pbx.sip.retry import Backoff
from m365pbx.sync.teams_to_pbx.receiver import KnownSubscription
from m365pbx.sync.teams_to_pbx.records import SubscriptionRecord, SubscriptionRecords

log = logging.getLogger(__name__)

# After a failure: 5 s, 10 s, ... up to 15 minutes, each with jitter (design.md rule 5).
FAILURE_BACKOFF = Backoff(initial=5.0, maximum=900.0)


@dataclass(frozen=True)
class Endpoints:
    """Where Graph delivers: notifications, lifecycle events; certificate for rich content."""

    notification_url: str
    lifecycle_url: str | None
    certificate: Callable[[], NotificationCertificate | None]


class AccountOwner:
    """Owns one service account's presence subscription."""

    def __init__(
        self,
        account: str,
        client: GraphClient,
        clock: Clock,
        records: SubscriptionRecords,
        endpoints: Endpoints,
        *,
        tenant_id: str,
        app_id: str,
        lifetime: timedelta = PRESENCE_MAX_LIFETIME,
        renew_margin: timedelta = timedelta(minutes=15),
    ) -> None:
        self.account = account
        self.client = client
        self.clock = clock
        self.records = records
        self.endpoints = endpoints
        self.tenant_id = tenant_id
        self.app_id = app_id
        self.lifetime = lifetime
        self.renew_margin = renew_margin
        self.people: tuple[str, ...] = ()
        # Until the directory has said who this account covers, a resumed subscription is
        # only renewed: neither deleted for having no people nor recreated.
        self.assigned = False
        self.current: SubscriptionRecord | None = None
        self._state = ConnectionState.STARTING
        self.since: datetime = clock.now()
        self.last_error: str | None = None
        self.creates = 0
        self.renewals = 0
        self._wake = asyncio.Event()
        self._lifecycle: list[str] = []
        self._failures = 0
        self._retry_after: float | None = None
        # Whether Graph may hold a subscription of ours that no record knows (see _create).
        self._unrecorded_possible = True
        self._rng = random.Random()  # noqa: S311 - jitter, not cryptography

    @property
    def state(self) -> ConnectionState:
        """The account's visible state; `since` says when it last changed."""
        return self._state

    @state.setter
    def state(self, value: ConnectionState) -> None:
        if value is ConnectionState.CONNECTED:
            self.last_error = None  # recovered: the old error is history
        if value is not self._state:
            self._state = value
            self.since = self.clock.now()

    # --- messages from the pool and the receiver -----------------------------------------
    def assign(self, people: tuple[str, ...]) -> None:
        """Cover exactly these Teams user ids from now on."""
        if not self.assigned or tuple(sorted(people)) != tuple(sorted(self.people)):
            self.assigned = True
            self.people = tuple(sorted(people))
            self._wake.set()

    def lifecycle(self, event: str) -> None:
        """Graph sent a lifecycle event for our subscription."""
        self._lifecycle.append(event)
        self._wake.set()

    def known(self) -> KnownSubscription | None:
        """The receiver's view of our current subscription."""
        if self.current is None:
            return None
        return KnownSubscription(self.current.graph_id, self.current.client_state,
                                 self.tenant_id, self.app_id, "presence")

    @property
    def healthy(self) -> bool:
        """Whether notifications are flowing for this account's people."""
        return self.state is ConnectionState.CONNECTED and self.current is not None

    # --- the owner's loop -------------------------------------------------------------------
    async def run(self) -> None:
        """Keep the subscription alive until cancelled."""
        await self._resume()
        while True:
            try:
                await self._step()
                self._failures = 0
            except SignInError as exc:
                # Entra ID unreachable or busy is no reason to doubt the credentials.
                self._fail(ConnectionState.DEGRADED if exc.retryable
                           else ConnectionState.BAD_CREDENTIALS, exc.describe(),
                           retry_after=getattr(exc, "retry_after", None))
            except Conflict as exc:
                await self._conflict(exc)
            except M365Error as exc:
                self._fail(ConnectionState.DEGRADED, exc.describe(),
                           retry_after=getattr(exc, "retry_after", None))
            except Exception as exc:
                # The store failed (e.g. SQLite busy beyond its timeout): this task owns the
                # account's subscription and must outlive it, showing the error meanwhile.
                log.exception("presence subscription of %s: unexpected failure", self.account)
                cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's
                first = (str(cause).splitlines() or [type(cause).__name__])[0][:200]
                self._fail(ConnectionState.DEGRADED,
                           f"cannot keep the subscription's record: {first}")
            await self._sleep_until_due()

    async def _resume(self) -> None:
        self._unrecorded_possible = self.current is None
        try:
            records = await self.records.load(self.account)
        except Exception:
            log.exception("cannot load recorded subscriptions")
            records = []
        now = self.clock.now()
        for record in records:
            if self.current is None and record.expires > now:
                self.current = record
                self._unrecorded_possible = False
                continue
            try:
                await self.records.delete(record.graph_id)
            except Exception as exc:
                # A stale row only costs a retry at the next start; the owner must run.
                log.warning("presence subscription of %s: cannot forget the stale record "
                            "%s: %s", self.account, record.graph_id, exc)

    async def _step(self) -> None:
        now = self.clock.now()
        while self._lifecycle:
            event = self._lifecycle.pop(0)
            if event == "reauthorizationRequired" and self.current is not None:
                await reauthorize_subscription(self.client, self.current.graph_id)
                await self._renew(now)
            elif event == "subscriptionRemoved":
                await self._forget()
        if not self.assigned:
            if self.current is not None and self.state is not ConnectionState.CONNECTED:
                await self._renew(now)  # resume at once after a restart
                self.state = ConnectionState.CONNECTED
            return
        if not self.people:
            await self._delete_current()
            self.state = ConnectionState.CONNECTED
            return
        wanted = presence_resource(self.people)
        if self.current is not None and self.current.resource != wanted:
            # Graph cannot change a subscription's id list: delete and create (graph.md 4.4).
            await self._delete_current()
        if self.current is None:
            await self._create(now, wanted)
        elif self.current.expires - now <= self.renew_margin or self.state is not (
            ConnectionState.CONNECTED
        ):
            await self._renew(now)
        self.state = ConnectionState.CONNECTED
        self.last_error = None

    async def _create(self, now: datetime, resource: str) -> None:
        if self._unrecorded_possible:
            await self._delete_unrecorded()
        client_state = secrets.token_urlsafe(32)
        certificate = self.endpoints.certificate()

        async def create(expires: datetime) -> Subscription:
            return await create_subscription(self.client, SubscriptionRequest(
                resource=resource,
                notification_url=self.endpoints.notification_url,
                expires=expires,
                client_state=client_state,
                lifecycle_url=self.endpoints.lifecycle_url,
                certificate=certificate,
            ))

        created = await self._with_expiry(now, create)
        self.creates += 1
        self.current = SubscriptionRecord(created.id, self.account, resource, created.expires,
                                          client_state)
        await self.records.save(self.current)

    async def _delete_unrecorded(self) -> None:
        """Delete subscriptions of ours that Graph holds and no record knows.

        A run stopped between Graph's answer to a create and the record of it (a node
        that lost its lease mid-create, a kill -9) leaves one behind; creating another
        would be refused with 409 (one presence subscription per app and user, graph.md
        4.4). Asked once per run, before its first create.
        """
        ours = self.endpoints.notification_url
        for subscription in await list_subscriptions(self.client):
            if "presences" in subscription.resource and subscription.notification_url == ours:
                log.info("presence subscription of %s: deleting %s, made by an earlier run "
                         "that could not record it", self.account, subscription.id)
                with contextlib.suppress(NotFound):
                    await delete_subscription(self.client, subscription.id)
        self._unrecorded_possible = False

    async def _renew(self, now: datetime) -> None:
        assert self.current is not None
        graph_id = self.current.graph_id

        async def renew(expires: datetime) -> Subscription:
            return await renew_subscription(self.client, graph_id, expires)

        try:
            renewed = await self._with_expiry(now, renew)
        except NotFound:
            # Expired or removed on Graph's side: start again (once we know our people).
            await self._forget()
            if self.people:
                await self._create(now, presence_resource(self.people))
            return
        self.renewals += 1
        self.current = SubscriptionRecord(self.current.graph_id, self.account,
                                          self.current.resource, renewed.expires,
                                          self.current.client_state)
        await self.records.save(self.current)

    async def _with_expiry(self, now: datetime,
                           call: Callable[[datetime], Awaitable[Subscription]]) -> Subscription:
        """Create or renew with an expiry Graph accepts by its own clock.

        The first answer of a client tells Graph's time (its Date header): when Graph
        refused the expiry and its clock turned out to differ from what we assumed, ask
        again at once with the measured skew.
        """
        assumed = getattr(self.client, "clock_skew", None)
        try:
            return await call(expiry_for(now, self.lifetime, assumed))
        except GraphError as exc:
            measured = getattr(self.client, "clock_skew", None)
            if not expiry_refused(exc) or measured is None or (
                    assumed is not None and abs(measured - assumed) < 1.0):
                raise
            log.info("presence subscription of %s: Graph's clock is %+.0f s from ours; "
                     "asking again for an expiry by its clock", self.account, measured)
            return await call(expiry_for(now, self.lifetime, measured))

    async def _delete_current(self) -> None:
        if self.current is None:
            return
        with contextlib.suppress(NotFound):
            await delete_subscription(self.client, self.current.graph_id)
        await self._forget()

    async def _forget(self) -> None:
        if self.current is not None:
            await self.records.delete(self.current.graph_id)
            self.current = None

    async def _conflict(self, exc: Conflict) -> None:
        """A presence subscription of this app and user exists that we do not hold."""
        try:
            existing = await list_subscriptions(self.client)
        except M365Error as list_error:
            self._fail(ConnectionState.ERROR, f"{exc.describe()}; listing failed: "
                       f"{list_error.describe()}")
            return
        ours = self.endpoints.notification_url
        for subscription in existing:
            if "presences" not in subscription.resource:
                continue
            if subscription.notification_url == ours:
                # Our own, from a lost database: we no longer know its secret; replace it.
                await delete_subscription(self.client, subscription.id)
                self._wake.set()
                return
            self._fail(
                ConnectionState.ERROR,
                f"another installation holds the presence subscription of {self.account} "
                f"(it delivers to {subscription.notification_url}); Graph allows one per app "
                "and user. Use another service account or app registration here, or stop "
                "the other installation, or take the subscription over with 'm365pbx "
                f"subscriptions takeover --account {self.account}'",
            )
            return
        self._fail(ConnectionState.ERROR, exc.describe())

    async def take_over(self) -> int:
        """Delete every presence subscription of this app and user (the admin's decision)."""
        removed = 0
        for subscription in await list_subscriptions(self.client):
            if "presences" in subscription.resource:
                await delete_subscription(self.client, subscription.id)
                removed += 1
        await self._forget()
        self._wake.set()
        return removed

    def _fail(self, state: ConnectionState, message: str, *,
              retry_after: float | None = None) -> None:
        self._failures += 1
        self._retry_after = retry_after
        self.state = state
        self.last_error = message
        log.warning("presence subscription of %s: %s", self.account, message)

    async def _sleep_until_due(self) -> None:
        if self._failures:
            delay = FAILURE_BACKOFF.delay(self._failures, self._retry_after, rng=self._rng)
        elif self.current is not None:
            due = self.current.expires - self.renew_margin - self.clock.now()
            delay = max(1.0, due.total_seconds())
        else:
            delay = 3600.0
        sleeper = asyncio.ensure_future(self.clock.sleep(delay))
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            woken.cancel()
            self._wake.clear()
