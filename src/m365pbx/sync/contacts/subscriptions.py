"""Contact change notifications: one subscription on `users/{id}/contacts` per person.

A notification makes ContactsSync read that person's changes (delta, every folder) at once;
Graph keeps such a subscription at most 4,230 minutes (graph.md 7), ours last a day and are
renewed ahead (MailboxSubscriptions, shared with the calendar). People whose subscription
cannot be made are read on the schedule meanwhile, and health says why.
"""

from __future__ import annotations

from datetime import timedelta

from m365pbx.clock import Clock
from m365pbx.graph.client import GraphClient
from m365pbx.sync.contacts.reader import ContactsSync
from m365pbx.sync.mailbox_records import MailboxRecords
from m365pbx.sync.mailbox_subscriptions import LIFETIME, RENEW_MARGIN, MailboxSubscriptions

KIND = "contacts"


class ContactSubscriptions(MailboxSubscriptions):
    """Keeps a subscription on each notified person's contacts; notifications wake the sync."""

    def __init__(self, client: GraphClient, clock: Clock, sync: ContactsSync, *,
                 notification_url: str, lifecycle_url: str | None, tenant_id: str,
                 app_id: str, lifetime: timedelta = LIFETIME,
                 renew_margin: timedelta = RENEW_MARGIN,
                 records: MailboxRecords | None = None) -> None:
        super().__init__(
            client, clock, kind=KIND, tail="contacts", wanted=sync.notified_people,
            read_now=sync.read_now, notification_url=notification_url,
            lifecycle_url=lifecycle_url, tenant_id=tenant_id, app_id=app_id,
            lifetime=lifetime, renew_margin=renew_margin, records=records)
        self.sync = sync
        sync.covered = self.covers
        sync.notifications = self
        sync.notifications_off = None
        sync.on_followed(self.wake)
