"""Event change notifications: one subscription on `users/{id}/events` per followed person.

A notification only makes the reader read that person's calendar again at once (the
event itself is read from calendarView); with notifications flowing a person is read once
a day instead of every poll interval. The subscriptions themselves are kept by
MailboxSubscriptions (sync/mailbox_subscriptions.py), shared with the contacts.
"""

from __future__ import annotations

from datetime import timedelta

from m365pbx.clock import Clock
from m365pbx.graph.client import GraphClient
from m365pbx.sync.calendar.reader import CalendarReader
from m365pbx.sync.mailbox_records import MailboxRecords
from m365pbx.sync.mailbox_subscriptions import LIFETIME, RENEW_MARGIN, MailboxSubscriptions

KIND = "calendar"


def events_resource(user_id: str) -> str:
    """The resource of one person's events."""
    return f"users/{user_id}/events"


class CalendarSubscriptions(MailboxSubscriptions):
    """Keeps a subscription on each followed person's events; notifications wake the reader."""

    def __init__(self, client: GraphClient, clock: Clock, reader: CalendarReader, *,
                 notification_url: str, lifecycle_url: str | None, tenant_id: str,
                 app_id: str, lifetime: timedelta = LIFETIME,
                 renew_margin: timedelta = RENEW_MARGIN,
                 records: MailboxRecords | None = None) -> None:
        super().__init__(
            client, clock, kind=KIND, tail="events",
            wanted=lambda: {uid: entries[0][0].teams_user_id
                            for uid, entries in reader.followed().items()},
            read_now=reader.read_now, notification_url=notification_url,
            lifecycle_url=lifecycle_url, tenant_id=tenant_id, app_id=app_id,
            lifetime=lifetime, renew_margin=renew_margin, records=records)
        self.reader = reader
        reader.covered = self.covers
        reader.hub.on_people(lambda _people: self.wake())
