"""Where Graph's notifications go once the receiver accepted them: the routing in one place.

The webhook receiver (teams_to_pbx/receiver.py) checks and queues; this intake answers
its questions and takes what it hands on (docs/flows.md, Teams → PBX): which of our
subscriptions an id is (a tenant's presence pool, its users subscription, its calendar
event or its contact subscriptions), presence readings to the hub, people to read back,
changed users, events and contacts to their readers, lifecycle events to the
subscription's owner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from m365pbx.clock import Clock
from m365pbx.graph.presence import PresenceReading
from m365pbx.sync.calendar.subscriptions import CalendarSubscriptions
from m365pbx.sync.contacts.subscriptions import ContactSubscriptions
from m365pbx.sync.hub import PresenceHub
from m365pbx.sync.teams_to_pbx.pool import SubscriptionPool
from m365pbx.sync.teams_to_pbx.readback import ReadBack
from m365pbx.sync.teams_to_pbx.readings import ReadingConverter
from m365pbx.sync.teams_to_pbx.receiver import KnownSubscription
from m365pbx.sync.users_subscription import UsersSubscription

__all__ = ["NotificationIntake", "TenantRoutes"]


class TenantRoutes(Protocol):
    """What one tenant offers the intake (service/tenant.py's TenantParts)."""

    @property
    def users_subscription(self) -> UsersSubscription | None:
        """The subscription on users (with a public URL and directory changes on)."""
        ...

    @property
    def calendar_subscriptions(self) -> CalendarSubscriptions | None:
        """The subscriptions on people's events (with a public URL and calendars on)."""
        ...

    @property
    def contact_subscriptions(self) -> ContactSubscriptions | None:
        """The subscriptions on people's contacts (with a public URL and contacts on)."""
        ...

    @property
    def pool(self) -> SubscriptionPool | None:
        """The presence subscriptions (None in polling mode)."""
        ...

    @property
    def readback(self) -> ReadBack:
        """Reads people's presence back from Graph in batches."""
        ...


class NotificationIntake:
    """Routes the receiver's notifications to the hub and to each tenant's parts."""

    def __init__(self, clock: Clock, hub: PresenceHub, converter: ReadingConverter,
                 tenants: Callable[[], Iterable[TenantRoutes]]) -> None:
        self.clock = clock
        self.hub = hub
        self.converter = converter
        self.tenants = tenants

    def known(self, subscription_id: str) -> KnownSubscription | None:
        """The subscription with this id if it is one of ours, else None."""
        for parts in self.tenants():
            users = parts.users_subscription
            if users is not None and (mine := users.known(subscription_id)) is not None:
                return mine
            for mailboxes in (parts.calendar_subscriptions, parts.contact_subscriptions):
                if mailboxes is not None and (
                        ours := mailboxes.known(subscription_id)) is not None:
                    return ours
            pool = parts.pool
            if pool is not None and (known := pool.known(subscription_id)) is not None:
                return known
        return None

    def readings(self, readings: list[PresenceReading]) -> None:
        """Rich notifications' presence: converted and handed to the hub."""
        now = self.clock.now().timestamp()
        for reading in readings:
            self.hub.teams_reading(reading.user_id, self.converter.convert(reading, now))

    def read_back(self, known: KnownSubscription, user_ids: list[str]) -> None:
        """Basic notifications: what changed is read from Graph by whoever follows it."""
        for parts in self.tenants():
            users = parts.users_subscription
            if users is not None and users.known(known.id) is not None:
                users.notified()  # some user changed: a directory change round now
                return
            for mailboxes in (parts.calendar_subscriptions, parts.contact_subscriptions):
                if mailboxes is not None and mailboxes.known(known.id) is not None:
                    mailboxes.notified(known.id)  # their events or contacts changed: read now
                    return
            pool = parts.pool
            if pool is not None and pool.owner_of(known.id) is not None:
                parts.readback.want(user_ids)

    async def lifecycle(self, known: KnownSubscription, event: str) -> None:
        """A lifecycle event for the subscription's owner; after `missed`, read everyone."""
        for parts in self.tenants():
            users = parts.users_subscription
            if users is not None and users.known(known.id) is not None:
                users.lifecycle(event)
            for mailboxes in (parts.calendar_subscriptions, parts.contact_subscriptions):
                if mailboxes is not None and mailboxes.known(known.id) is not None:
                    mailboxes.lifecycle(known.id, event)
            pool = parts.pool
            owner = pool.owner_of(known.id) if pool is not None else None
            if owner is not None:
                owner.lifecycle(event)
                if event == "missed":
                    parts.readback.want(list(owner.people))
