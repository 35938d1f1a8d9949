"""What one mailbox holds: calendar events, contacts in folders, and the change log for delta."""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime

SHOW_AS = ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown")
SENSITIVITY = ("normal", "personal", "private", "confidential")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def new_item_id(kind: str = "AAMkAG") -> str:
    """An opaque id in the style of Exchange item ids (base64url, no padding)."""
    raw = base64.urlsafe_b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes[:8]).decode()
    # No "_" in ids: it separates a series id from an occurrence date (recurrence.py).
    return kind + raw.rstrip("=").replace("_", "-")


def exchange_item_id(mailbox: uuid.UUID, folder_id: str, counter: int) -> str:
    """An item id shaped like Exchange's: base64url of the mailbox GUID, its folder, the item.

    Graph's ids (152 characters) encode the mailbox GUID as text, the store's entry id
    with the folder's database GUID and counter, then the item's database GUID and counter
    (contact-get.md: `AAMkAGVmMDEz...AAAYbuK-AAA=`), so the ids of one folder's items
    differ only in their last dozen characters. Base64url as Graph's, "_" and padding
    included (a contact has no occurrences, whose ids `new_item_id` keeps "_" out of).
    """
    database = uuid.uuid5(mailbox, "database").bytes
    folder = hashlib.blake2b(folder_id.encode(), digest_size=6).digest()
    raw = (b"\x00\x03\x24\x00" + str(mailbox).encode() + b"\x00\x46\x00\x00\x00\x00\x00"
           + uuid.uuid5(mailbox, "store").bytes + b"\x07\x00" + database + folder + b"\x00\x00"
           + database + counter.to_bytes(6, "big") + b"\x00\x00")
    return base64.urlsafe_b64encode(raw).decode()


def new_change_key() -> str:
    """A fresh changeKey (changes on every update of an item)."""
    return base64.b64encode(uuid.uuid4().bytes[:12]).decode()


@dataclass
class Recurrence:
    """Graph's patternedRecurrence: daily, weekly, monthly and yearly series."""

    # "daily" | "weekly" | "absoluteMonthly" | "relativeMonthly" | "absoluteYearly" |
    # "relativeYearly"
    pattern_type: str
    interval: int = 1
    days_of_week: tuple[str, ...] = ()
    first_day_of_week: str = "sunday"
    day_of_month: int = 0  # absolute patterns
    month: int = 0  # yearly patterns, 1-12
    index: str = "first"  # relative patterns: first, second, third, fourth, last
    range_type: str = "noEnd"  # "endDate" | "noEnd" | "numbered"
    start_date: date | None = None
    end_date: date | None = None
    number_of_occurrences: int = 0


@dataclass
class Event:
    """One calendar item; `start`/`end` are aware UTC instants, `time_zone` the zone it was
    created in (echoed as originalStartTimeZone; all-day events span midnights there)."""

    id: str
    subject: str
    start: datetime
    end: datetime
    time_zone: str
    organizer_name: str
    organizer_address: str
    created: datetime
    modified: datetime
    show_as: str = "busy"
    is_all_day: bool = False
    is_cancelled: bool = False
    is_online_meeting: bool = False
    is_organizer: bool = True
    sensitivity: str = "normal"
    importance: str = "normal"
    location: str | None = None
    body: str = ""
    categories: list[str] = field(default_factory=list)
    recurrence: Recurrence | None = None
    # Exceptions of a series, by the occurrence's original local date: cancelled (deleted)
    # occurrences, and moved ones with their new start and end.
    cancelled_occurrences: set[date] = field(default_factory=set)
    moved_occurrences: dict[date, tuple[datetime, datetime]] = field(default_factory=dict)
    change_key: str = field(default_factory=new_change_key)
    ical_uid: str = field(default_factory=lambda: uuid.uuid4().hex.upper())

    @property
    def is_series(self) -> bool:
        """Whether this is a series master whose occurrences calendarView expands."""
        return self.recurrence is not None


@dataclass(frozen=True)
class Instance:
    """An event as it occupies time: a single instance or one occurrence of a series."""

    event: Event
    start: datetime
    end: datetime
    occurrence_id: str | None = None
    # A moved occurrence (Graph's type "exception").
    exception: bool = False

    @property
    def id(self) -> str:
        """The id Graph shows for this instance."""
        return self.occurrence_id or self.event.id


@dataclass
class EmailAddress:
    """An entry of a contact's emailAddresses."""

    address: str
    name: str | None = None


@dataclass
class Contact:
    """A personal contact in one folder."""

    id: str
    folder_id: str
    created: datetime
    modified: datetime
    display_name: str | None = None
    given_name: str | None = None
    surname: str | None = None
    middle_name: str | None = None
    nick_name: str | None = None
    company_name: str | None = None
    department: str | None = None
    job_title: str | None = None
    office_location: str | None = None
    business_phones: list[str] = field(default_factory=list)
    home_phones: list[str] = field(default_factory=list)
    mobile_phone: str | None = None
    email_addresses: list[EmailAddress] = field(default_factory=list)
    im_addresses: list[str] = field(default_factory=list)
    personal_notes: str | None = None
    categories: list[str] = field(default_factory=list)
    change_key: str = field(default_factory=new_change_key)
    # Mailbox-wide sequence number of the last change, for contact delta.
    version: int = 0


@dataclass
class ContactFolder:
    """A contact folder; the default one ("Contacts") parents every named folder."""

    id: str
    display_name: str
    parent_id: str


@dataclass(frozen=True)
class Tombstone:
    """A deleted contact, remembered so that delta can report it as removed."""

    id: str
    folder_id: str
    version: int


@dataclass
class WorkingHours:
    """The mailbox's working hours, as getSchedule reports them."""

    days_of_week: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday")
    start: str = "08:00:00"
    end: str = "17:00:00"


@dataclass(frozen=True)
class AutomaticReplies:
    """A mailbox's automatic replies (resources/automaticrepliessetting.md); the window counts
    only while `status` is scheduled."""

    status: str = "disabled"  # disabled, alwaysEnabled, scheduled
    external_audience: str = "all"  # none, contactsOnly, all
    # Outlook keeps a window even while disabled (the last one set).
    start: datetime | None = None
    end: datetime | None = None
    time_zone: str = "UTC"
    internal_reply: str = ""
    external_reply: str = ""


@dataclass
class Mailbox:
    """One user's calendar and contacts."""

    tenant_id: str
    user_id: str
    time_zone: str = "UTC"
    working_hours: WorkingHours = field(default_factory=WorkingHours)
    events: dict[str, Event] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)
    folders: dict[str, ContactFolder] = field(default_factory=dict)
    default_folder_id: str = field(default_factory=lambda: new_item_id("AAMkAC"))
    root_folder_id: str = field(default_factory=lambda: new_item_id("AAMkAR"))
    tombstones: list[Tombstone] = field(default_factory=list)
    contact_version: int = 0
    guid: uuid.UUID = field(default_factory=uuid.uuid4)  # the mailbox's, in its item ids
    item_counter: int = field(default_factory=lambda: uuid.uuid4().int >> 100)
    automatic_replies: AutomaticReplies = field(default_factory=lambda: AutomaticReplies())

    def __post_init__(self) -> None:
        self.folders.setdefault(self.default_folder_id, ContactFolder(
            self.default_folder_id, "Contacts", self.root_folder_id))

    def next_contact_version(self) -> int:
        """A new sequence number for a contact change."""
        self.contact_version += 1
        return self.contact_version

    def new_contact_id(self, folder_id: str) -> str:
        """An id for a new contact in a folder (sharing all but its tail with the folder's)."""
        self.item_counter += 1
        return exchange_item_id(self.guid, folder_id, self.item_counter)

    def folder_named(self, name: str) -> ContactFolder | None:
        """A contact folder by display name (case-insensitive)."""
        folded = name.casefold()
        return next((f for f in self.folders.values() if f.display_name.casefold() == folded),
                    None)
