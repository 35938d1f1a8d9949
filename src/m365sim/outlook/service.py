"""The outlook part: every user's mailbox (calendar and contacts), changes and their effects.

Other parts may call: `mailbox`, `find_mailbox`, `instances`, `add_event`, `update_event`,
`cancel_event`, `add_contact`, `update_contact`, `delete_contact`, and
`calendar_activity`. Every change is published on `sim.bus` as a ResourceChange
(`users/{userId}/events/{eventId}`, `users/{userId}/contacts/{contactId}`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from m365sim.errors import GraphError
from m365sim.events import ResourceChange
from m365sim.outlook import specs
from m365sim.outlook.calendar_presence import CalendarPresence
from m365sim.outlook.model import (
    Contact,
    ContactFolder,
    Event,
    Instance,
    Mailbox,
    Tombstone,
    WorkingHours,
    new_change_key,
    new_item_id,
)
from m365sim.outlook.recurrence import find_occurrence, instances, split_occurrence_id
from m365sim.outlook.render import contact_json, event_json
from m365sim.outlook.schedule import MAX_SCHEDULES
from m365sim.outlook.specs import SpecError
from m365sim.outlook.timezones import resolve_zone

if TYPE_CHECKING:
    from m365sim.model import Tenant, User
    from m365sim.simulator import Simulator

_TIME_KEYS = ("start", "startin", "end", "duration", "timezone", "zone", "isallday", "allday")
CANCELED_PREFIX = "Canceled: "


def bad_spec(exc: SpecError) -> GraphError:
    """A control-API body that cannot become an item."""
    return GraphError(400, "BadRequest", str(exc))


def item_not_found() -> GraphError:
    """Outlook's answer for an id that names no item in the mailbox."""
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


class OutlookService:
    """Calendars and contacts of every user, on the simulator's clock."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._mailboxes: dict[tuple[str, str], Mailbox] = {}
        self._smtp_index: dict[str, tuple[int, dict[str, str]]] = {}
        self.presence_effects = CalendarPresence(sim, self.instances)
        # Documented limit for getSchedule (concepts/outlook-get-free-busy-schedule.md);
        # the service has been seen to accept 100 (docs issue #7047).
        self.max_schedules = MAX_SCHEDULES

    async def run(self) -> None:
        """Drive calendar-derived presence at every meeting start and end until cancelled."""
        await self.presence_effects.run(lambda: list(self._mailboxes.values()))

    # -- mailboxes -------------------------------------------------------------------------

    def mailbox(self, tenant_id: str, user_id: str) -> Mailbox:
        """The user's mailbox, made empty on first use (every user has one)."""
        key = (tenant_id, user_id)
        box = self._mailboxes.get(key)
        if box is None:
            box = self._mailboxes[key] = Mailbox(tenant_id, user_id)
        return box

    def find_mailbox(self, tenant_id: str, user_id: str) -> Mailbox | None:
        """The mailbox if anything was ever stored in it."""
        return self._mailboxes.get((tenant_id, user_id))

    def find_by_smtp(self, tenant: Tenant, address: str) -> User | None:
        """A user of the tenant by SMTP address: UPN, mail or an `smtp:` proxy address."""
        version, index = self._smtp_index.get(tenant.id, (-1, {}))
        if version != tenant.directory_version:
            index = {}
            for user in tenant.users.values():
                if user.deleted:
                    continue
                for proxy in user.proxy_addresses:
                    if proxy.lower().startswith("smtp:"):
                        index.setdefault(proxy[5:].casefold(), user.id)
                if user.mail:
                    index[user.mail.casefold()] = user.id
                index[user.user_principal_name.casefold()] = user.id
            self._smtp_index[tenant.id] = (tenant.directory_version, index)
        user_id = index.get(address.strip().casefold())
        return tenant.find_user(user_id) if user_id else None

    def calendar_activity(self, tenant_id: str, user_id: str) -> str | None:
        """`InAMeeting`, `OutOfOffice` or None: what the calendar makes of the user now."""
        return self.presence_effects.activity(tenant_id, user_id)

    def load_user(self, tenant: Tenant, user: User, calendar: Any, contacts: Any) -> None:
        """Load a scenario user's calendar events and contacts (see docs/simulator/outlook.md)."""
        from m365sim.scenario import ScenarioError

        if calendar is None and contacts is None:
            return
        where = f"user {user.user_principal_name}"
        box = self.mailbox(tenant.id, user.id)
        try:
            events = self._calendar_settings(box, calendar)
        except (SpecError, GraphError) as exc:
            raise ScenarioError(f"{where}: calendar: {_text(exc)}") from None
        for index, entry in enumerate(events):
            try:
                self.add_event(tenant, user, entry, notify=False)
            except (SpecError, GraphError) as exc:
                raise ScenarioError(f"{where}: calendar[{index}]: {_text(exc)}") from None
        folders, entries = _contact_settings(contacts)
        for name in folders:
            self.folder(box, str(name))
        for index, entry in enumerate(entries):
            try:
                self.add_contact(tenant, user, entry, notify=False)
            except (SpecError, GraphError) as exc:
                raise ScenarioError(f"{where}: contacts[{index}]: {_text(exc)}") from None

    def _calendar_settings(self, box: Mailbox, calendar: Any) -> list[Any]:
        if calendar is None:
            return []
        if isinstance(calendar, list):
            return calendar
        settings = specs.normalise(calendar)
        if "timezone" in settings:
            zone = str(settings["timezone"])
            resolve_zone(zone)
            box.time_zone = zone
        hours = settings.get("workinghours")
        if hours is not None:
            hours = specs.normalise(hours)
            box.working_hours = WorkingHours(
                tuple(str(d).lower() for d in hours.get("daysofweek", WorkingHours().days_of_week)),
                str(hours.get("starttime", "08:00:00")), str(hours.get("endtime", "17:00:00")))
        events = settings.get("events") or []
        if not isinstance(events, list):
            raise SpecError("events must be a list")
        return events

    # -- events ----------------------------------------------------------------------------

    def instances(self, mailbox: Mailbox, start: datetime, end: datetime) -> list[Instance]:
        """Instances (single events and occurrences) overlapping [start, end), by start."""
        found = [i for event in mailbox.events.values() for i in instances(event, start, end)]
        found.sort(key=lambda i: (i.start, i.end, i.id))
        return found

    def find_instance(self, mailbox: Mailbox, item_id: str) -> Instance | None:
        """A single event, series master or occurrence by the id Graph shows for it."""
        event = mailbox.events.get(item_id)
        if event is not None:
            return Instance(event, event.start, event.end)
        parts = split_occurrence_id(item_id)
        if parts is None or parts[0] not in mailbox.events:
            return None
        return find_occurrence(mailbox.events[parts[0]], parts[1])

    def add_event(self, tenant: Tenant, user: User, spec: Mapping[str, Any], *,
                  notify: bool = True) -> Event:
        """Create an event from a scenario or control-API spec (SpecError if malformed)."""
        box = self.mailbox(tenant.id, user.id)
        data = specs.normalise(spec)
        now = self.sim.clock.now()
        start, end, zone = specs.event_times(data, now=now, default_zone=box.time_zone,
                                             all_day=specs.is_all_day(data))
        who = specs.organizer(data)
        owner = (user.display_name, user.mail or user.user_principal_name)
        event_id = str(data.get("id") or new_item_id())
        if event_id in box.events:
            raise SpecError(f"id: an event {event_id} exists already")
        event = Event(
            id=event_id, start=start, end=end, time_zone=zone,
            organizer_name=(who or owner)[0], organizer_address=(who or owner)[1],
            is_organizer=who is None or who[1].casefold() == owner[1].casefold(),
            created=now, modified=now, is_all_day=specs.is_all_day(data),
            recurrence=specs.recurrence(data.get("recurrence")), **specs.event_options(data))
        box.events[event.id] = event
        self._event_changed(box, event, "created", notify)
        return event

    def set_automatic_replies(self, tenant: Tenant, user: User,
                              changes: Mapping[str, Any]) -> None:
        """Change a mailbox's automatic replies as a PATCH of mailboxSettings would (Graph's
        names or snake_case; windows as dateTimeTimeZone); GraphError 400 if invalid."""
        from m365sim.outlook.mailbox_settings import changed

        box = self.mailbox(tenant.id, user.id)
        box.automatic_replies = changed(box.automatic_replies, changes)

    def update_event(self, tenant: Tenant, user: User, event_id: str,
                     changes: Mapping[str, Any]) -> Event:
        """Change an event's fields (times, showAs, subject, ...) and notify."""
        box = self.mailbox(tenant.id, user.id)
        event = box.events.get(event_id)
        if event is None and split_occurrence_id(event_id) is not None:
            return self._move_occurrence(box, event_id, changes)
        if event is None:
            raise item_not_found()
        data = specs.normalise(changes)
        merged = {"subject": event.subject, "showas": event.show_as,
                  "sensitivity": event.sensitivity, "importance": event.importance,
                  "iscancelled": event.is_cancelled, "isonlinemeeting": event.is_online_meeting,
                  "location": event.location, "body": event.body,
                  "categories": event.categories, **data}
        options = specs.event_options(merged)
        if any(key in data for key in _TIME_KEYS):
            timing: dict[str, Any] = {"timezone": event.time_zone,
                                      "isallday": event.is_all_day, **data}
            if "start" not in data and "startin" not in data:
                timing["start"] = event.start
            if "end" not in data and "duration" not in data:
                timing["duration"] = (event.end - event.start).total_seconds()
            all_day = specs.is_all_day(timing)
            event.start, event.end, event.time_zone = specs.event_times(
                timing, now=self.sim.clock.now(), default_zone=event.time_zone,
                all_day=all_day)
            event.is_all_day = all_day
        if "recurrence" in data:
            event.recurrence = specs.recurrence(data["recurrence"])
        for name, value in options.items():
            setattr(event, name, value)
        self._touch(event)
        self._event_changed(box, event, "updated", True)
        return event

    def cancel_event(self, tenant: Tenant, user: User, event_id: str, *,
                     remove: bool = False) -> Event:
        """Cancel a meeting as Exchange does: the organizer's item is removed (event: cancel
        moves it to Deleted Items); an attendee's copy stays, marked cancelled and free.
        `remove` deletes the attendee's copy too."""
        box = self.mailbox(tenant.id, user.id)
        event = box.events.get(event_id)
        if event is None:
            if split_occurrence_id(event_id) is not None:
                return self._cancel_occurrence(box, event_id)
            raise item_not_found()
        if remove or event.is_organizer:
            del box.events[event_id]
            self._event_changed(box, event, "deleted", True)
            return event
        event.is_cancelled = True
        event.show_as = "free"
        if not event.subject.startswith(CANCELED_PREFIX):
            event.subject = CANCELED_PREFIX + event.subject
        self._touch(event)
        self._event_changed(box, event, "updated", True)
        return event

    def _occurrence(self, box: Mailbox, occurrence_id: str) -> tuple[Event, date]:
        parts = split_occurrence_id(occurrence_id)
        master = None if parts is None else box.events.get(parts[0])
        if parts is None or master is None or find_occurrence(master, parts[1]) is None:
            raise item_not_found()
        return master, parts[1]

    def _move_occurrence(self, box: Mailbox, occurrence_id: str,
                         changes: Mapping[str, Any]) -> Event:
        """One occurrence gets its own start and end (an exception of the series)."""
        master, day = self._occurrence(box, occurrence_id)
        data = specs.normalise(changes)
        if set(data) - set(_TIME_KEYS):
            raise GraphError(400, "BadRequest", "m365sim changes only the start and end of a "
                             "single occurrence; change the series master for the rest.")
        current = find_occurrence(master, day)
        assert current is not None
        timing: dict[str, Any] = {"timezone": master.time_zone,
                                  "isallday": master.is_all_day, **data}
        if "start" not in data and "startin" not in data:
            timing["start"] = current.start
        if "end" not in data and "duration" not in data:
            timing["duration"] = (current.end - current.start).total_seconds()
        start, end, _zone = specs.event_times(timing, now=self.sim.clock.now(),
                                              default_zone=master.time_zone,
                                              all_day=master.is_all_day)
        master.moved_occurrences[day] = (start, end)
        self._touch(master)
        moved = find_occurrence(master, day)
        assert moved is not None
        self._occurrence_changed(box, moved, "updated")
        return master

    def _cancel_occurrence(self, box: Mailbox, occurrence_id: str) -> Event:
        """One occurrence leaves the series (as Outlook deletes it)."""
        master, day = self._occurrence(box, occurrence_id)
        gone = find_occurrence(master, day)
        assert gone is not None
        master.cancelled_occurrences.add(day)
        self._touch(master)
        self._occurrence_changed(box, gone, "deleted")
        return master

    def _occurrence_changed(self, box: Mailbox, instance: Instance, change: str) -> None:
        self.presence_effects.changed(box)
        odata_id = f"Users/{box.user_id}/Events/{instance.id}"
        data = ({"@odata.type": "#microsoft.graph.event", "@odata.id": odata_id,
                 "id": instance.id} if change == "deleted" else
                {"@odata.type": "#microsoft.graph.event", "@odata.id": odata_id,
                 **event_json(instance)})
        self.sim.bus.publish(ResourceChange(
            box.tenant_id, f"users/{box.user_id}/events/{instance.id}", change, instance.id,
            "#microsoft.graph.event", odata_id, data))

    def _touch(self, item: Event | Contact) -> None:
        item.modified = self.sim.clock.now()
        item.change_key = new_change_key()

    def _event_changed(self, box: Mailbox, event: Event, change: str, notify: bool) -> None:
        self.presence_effects.changed(box)
        if not notify:
            return
        odata_id = f"Users/{box.user_id}/Events/{event.id}"
        data = ({"@odata.type": "#microsoft.graph.event", "@odata.id": odata_id,
                 "id": event.id} if change == "deleted" else
                {"@odata.type": "#microsoft.graph.event", "@odata.id": odata_id,
                 **event_json(Instance(event, event.start, event.end))})
        self.sim.bus.publish(ResourceChange(
            box.tenant_id, f"users/{box.user_id}/events/{event.id}", change, event.id,
            "#microsoft.graph.event", odata_id, data))

    # -- contacts --------------------------------------------------------------------------

    def folder(self, box: Mailbox, name: str) -> ContactFolder:
        """A named contact folder under the default one, made on first use."""
        found = box.folder_named(name)
        if found is None:
            found = ContactFolder(new_item_id("AAMkAF"), name, box.default_folder_id)
            box.folders[found.id] = found
        return found

    def add_contact(self, tenant: Tenant, user: User, spec: Mapping[str, Any], *,
                    notify: bool = True) -> Contact:
        """Create a contact (in `folder` by name or `parentFolderId`, else the default)."""
        box = self.mailbox(tenant.id, user.id)
        data = specs.normalise(spec)
        folder_id = box.default_folder_id
        if data.get("parentfolderid"):
            folder_id = str(data["parentfolderid"])
            if folder_id not in box.folders:
                raise SpecError(f"parentFolderId: no contact folder {folder_id}")
        elif data.get("folder"):
            folder_id = self.folder(box, str(data["folder"])).id
        now = self.sim.clock.now()
        contact = Contact(id=str(data.get("id") or box.new_contact_id(folder_id)),
                          folder_id=folder_id, created=now, modified=now)
        if contact.id in box.contacts:
            raise SpecError(f"id: a contact {contact.id} exists already")
        for name, value in specs.contact_fields(data).items():
            setattr(contact, name, value)
        _default_display_name(contact)
        contact.version = box.next_contact_version()
        box.contacts[contact.id] = contact
        if notify:
            self._contact_changed(box, contact, "created")
        return contact

    def update_contact(self, tenant: Tenant, user: User, contact_id: str,
                       changes: Mapping[str, Any]) -> Contact:
        """Change a contact's fields and notify."""
        box = self.mailbox(tenant.id, user.id)
        contact = box.contacts.get(contact_id)
        if contact is None:
            raise item_not_found()
        for name, value in specs.contact_fields(specs.normalise(changes)).items():
            setattr(contact, name, value)
        self._touch(contact)
        contact.version = box.next_contact_version()
        self._contact_changed(box, contact, "updated")
        return contact

    def delete_contact(self, tenant: Tenant, user: User, contact_id: str) -> None:
        """Delete a contact; delta reports it as removed."""
        box = self.mailbox(tenant.id, user.id)
        contact = box.contacts.pop(contact_id, None)
        if contact is None:
            raise item_not_found()
        box.tombstones.append(Tombstone(contact.id, contact.folder_id,
                                        box.next_contact_version()))
        self._contact_changed(box, contact, "deleted")

    def _contact_changed(self, box: Mailbox, contact: Contact, change: str) -> None:
        odata_id = f"Users/{box.user_id}/Contacts/{contact.id}"
        base = {"@odata.type": "#microsoft.graph.contact", "@odata.id": odata_id}
        data = {**base, "id": contact.id} if change == "deleted" else {
            **base, **contact_json(contact)}
        self.sim.bus.publish(ResourceChange(
            box.tenant_id, f"users/{box.user_id}/contacts/{contact.id}", change, contact.id,
            "#microsoft.graph.contact", odata_id, data))


def _default_display_name(contact: Contact) -> None:
    if contact.display_name:
        return
    parts = [p for p in (contact.given_name, contact.surname) if p]
    if parts:
        contact.display_name = " ".join(parts)
    elif contact.email_addresses:
        contact.display_name = contact.email_addresses[0].address


def _contact_settings(contacts: Any) -> tuple[list[Any], list[Any]]:
    if contacts is None:
        return [], []
    if isinstance(contacts, list):
        return [], contacts
    settings = specs.normalise(contacts)
    return list(settings.get("folders") or []), list(settings.get("contacts") or [])


def _text(exc: Exception) -> str:
    return exc.message if isinstance(exc, GraphError) else str(exc)

