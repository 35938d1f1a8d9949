"""Events and contacts as Graph's JSON (resources/event.md, resources/contact.md)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from m365sim.outlook.model import Contact, ContactFolder, Event, Instance, Recurrence
from m365sim.outlook.timezones import date_time_time_zone, floating_date, resolve_zone

# Every property of the v1.0 types (graph-schema types/event.json and types/contact.json):
# $select accepts these and refuses anything else.
EVENT_PROPERTIES = frozenset({
    "allowNewTimeProposals", "attendees", "body", "bodyPreview", "cancelledOccurrences",
    "categories", "changeKey", "createdDateTime", "end", "hasAttachments", "hideAttendees",
    "iCalUId", "id", "importance", "isAllDay", "isCancelled", "isDraft", "isOnlineMeeting",
    "isOrganizer", "isReminderOn", "lastModifiedDateTime", "location", "locations",
    "onlineMeeting", "onlineMeetingProvider", "onlineMeetingUrl", "organizer",
    "originalEndTimeZone", "originalStart", "originalStartTimeZone", "recurrence",
    "reminderMinutesBeforeStart", "responseRequested", "responseStatus", "sensitivity",
    "seriesMasterId", "showAs", "start", "subject", "transactionId", "type", "webLink",
})
CONTACT_PROPERTIES = frozenset({
    "assistantName", "birthday", "businessAddress", "businessHomePage", "businessPhones",
    "categories", "changeKey", "children", "companyName", "createdDateTime", "department",
    "displayName", "emailAddresses", "fileAs", "generation", "givenName", "homeAddress",
    "homePhones", "id", "imAddresses", "initials", "jobTitle", "lastModifiedDateTime",
    "manager", "middleName", "mobilePhone", "nickName", "officeLocation", "otherAddress",
    "parentFolderId", "personalNotes", "profession", "spouseName", "surname", "title",
    "yomiCompanyName", "yomiGivenName", "yomiSurname",
})
# Calendars.ReadBasic reads events "except for properties such as body, attachments and
# extensions" (permissions reference).
BASIC_HIDDEN = frozenset({"body", "bodyPreview"})


def graph_instant(moment: datetime) -> str:
    """A DateTimeOffset as Outlook writes it (UTC, 'Z')."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _empty_address() -> dict[str, Any]:
    return {"street": None, "city": None, "state": None, "countryOrRegion": None,
            "postalCode": None}


def recurrence_json(rule: Recurrence, time_zone: str) -> dict[str, Any]:
    """A patternedRecurrence."""
    return {
        "pattern": {"type": rule.pattern_type, "interval": rule.interval,
                    "month": rule.month, "dayOfMonth": rule.day_of_month,
                    "daysOfWeek": list(rule.days_of_week),
                    "firstDayOfWeek": rule.first_day_of_week, "index": rule.index},
        "range": {"type": rule.range_type,
                  "startDate": rule.start_date.isoformat() if rule.start_date else None,
                  "endDate": rule.end_date.isoformat() if rule.end_date else "0001-01-01",
                  "recurrenceTimeZone": time_zone,
                  "numberOfOccurrences": rule.number_of_occurrences},
    }


def _when(event: Event, moment: datetime, zone_name: str) -> dict[str, str]:
    if event.is_all_day:
        # All-day items float: the same dates, midnight in whichever zone the caller reads.
        return floating_date(moment.astimezone(resolve_zone(event.time_zone)).date(),
                             zone_name)
    return date_time_time_zone(moment, zone_name)


def event_json(instance: Instance, zone_name: str = "UTC", *,
               base_url: str = "https://outlook.office365.com") -> dict[str, Any]:
    """The full JSON of an event instance, times shown in `zone_name`."""
    event = instance.event
    if instance.occurrence_id is not None:
        kind = "exception" if instance.exception else "occurrence"
        master_id, recurrence = event.id, None
    elif event.recurrence is not None:
        kind, master_id, recurrence = "seriesMaster", None, recurrence_json(
            event.recurrence, event.time_zone)
    else:
        kind, master_id, recurrence = "singleInstance", None, None
    organizer = {"emailAddress": {"name": event.organizer_name,
                                  "address": event.organizer_address}}
    location = {"displayName": event.location or "", "locationType": "default",
                "uniqueIdType": "unknown" if not event.location else "private",
                "address": _empty_address(), "coordinates": {}}
    online = {"joinUrl": f"https://teams.microsoft.com/l/meetup-join/{event.ical_uid}"} \
        if event.is_online_meeting else None
    return {
        "@odata.etag": f'W/"{event.change_key}"',
        "id": instance.id,
        "createdDateTime": graph_instant(event.created),
        "lastModifiedDateTime": graph_instant(event.modified),
        "changeKey": event.change_key,
        "categories": list(event.categories),
        "transactionId": None,
        "originalStartTimeZone": event.time_zone,
        "originalEndTimeZone": event.time_zone,
        "iCalUId": event.ical_uid,
        "reminderMinutesBeforeStart": 15,
        "isReminderOn": not event.is_cancelled,
        "hasAttachments": False,
        "subject": event.subject,
        "bodyPreview": event.body[:255],
        "importance": event.importance,
        "sensitivity": event.sensitivity,
        "isAllDay": event.is_all_day,
        "isCancelled": event.is_cancelled,
        "isOrganizer": event.is_organizer,
        "responseRequested": True,
        "seriesMasterId": master_id,
        "showAs": event.show_as,
        "type": kind,
        "webLink": f"{base_url}/owa/?itemid={instance.id}&exvsurl=1&path=/calendar/item",
        "onlineMeetingUrl": None,
        "isOnlineMeeting": event.is_online_meeting,
        "onlineMeetingProvider": "teamsForBusiness" if event.is_online_meeting else "unknown",
        "allowNewTimeProposals": True,
        "isDraft": False,
        "hideAttendees": False,
        "responseStatus": {"response": "organizer" if event.is_organizer else "accepted",
                           "time": "0001-01-01T00:00:00Z"},
        "body": {"contentType": "html", "content": event.body},
        "start": _when(event, instance.start, zone_name),
        "end": _when(event, instance.end, zone_name),
        "location": location,
        "locations": [location] if event.location else [],
        "recurrence": recurrence,
        "attendees": [],
        "organizer": organizer,
        "onlineMeeting": online,
    }


def contact_json(contact: Contact) -> dict[str, Any]:
    """The full JSON of a contact."""
    initials = "".join(part[0].upper() + "." for part in (contact.given_name, contact.surname)
                       if part)
    return {
        "@odata.etag": f'W/"{contact.change_key}"',
        "id": contact.id,
        "createdDateTime": graph_instant(contact.created),
        "lastModifiedDateTime": graph_instant(contact.modified),
        "changeKey": contact.change_key,
        "categories": list(contact.categories),
        "parentFolderId": contact.folder_id,
        "birthday": None,
        "fileAs": contact.display_name or "",
        "displayName": contact.display_name,
        "givenName": contact.given_name,
        "initials": initials or None,
        "middleName": contact.middle_name,
        "nickName": contact.nick_name,
        "surname": contact.surname,
        "title": None,
        "yomiGivenName": None,
        "yomiSurname": None,
        "yomiCompanyName": None,
        "generation": None,
        "imAddresses": list(contact.im_addresses),
        "jobTitle": contact.job_title,
        "companyName": contact.company_name,
        "department": contact.department,
        "officeLocation": contact.office_location,
        "profession": None,
        "businessHomePage": None,
        "assistantName": None,
        "manager": None,
        "homePhones": list(contact.home_phones),
        "mobilePhone": contact.mobile_phone,
        "businessPhones": list(contact.business_phones),
        "spouseName": None,
        "personalNotes": contact.personal_notes or "",
        "children": [],
        "emailAddresses": [{"name": e.name if e.name is not None else e.address,
                            "address": e.address} for e in contact.email_addresses],
        "homeAddress": {},
        "businessAddress": {},
        "otherAddress": {},
    }


def folder_json(folder: ContactFolder) -> dict[str, Any]:
    """A contactFolder."""
    return {"id": folder.id, "displayName": folder.display_name,
            "parentFolderId": folder.parent_id}


def project(item: dict[str, Any], select: Iterable[str] | None,
            hidden: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Keep the selected properties (plus id and the etag, as Outlook does)."""
    if select is None:
        return {k: v for k, v in item.items() if k not in hidden}
    wanted = set(select) | {"id", "@odata.etag"}
    return {k: v for k, v in item.items() if k in wanted and k not in hidden}
