"""Turning what Graph returns (contacts, org contacts, Teams users) into index entries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from m365pbx.core.contacts import ContactEntry, Source, entry
from m365pbx.graph.contacts import GraphContact


def contact_entry(contact: GraphContact, source: Source, region: str) -> ContactEntry:
    """An index entry from a personal or organisational contact."""
    return entry(contact.id, source, region=region, display_name=contact.display_name,
                 given_name=contact.given_name, surname=contact.surname,
                 company=contact.company, job_title=contact.job_title,
                 emails=contact.emails, phones=contact.phones)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def directory_entries(users: Iterable[Mapping[str, Any]], region: str) -> list[ContactEntry]:
    """Index entries from Teams users as the directory sync reads them (with phones or mail)."""
    found = []
    for user in users:
        user_id = _text(user.get("id"))
        phones = [("business", _text(n)) for n in user.get("businessPhones") or () if _text(n)]
        if _text(user.get("mobilePhone")):
            phones.append(("mobile", _text(user.get("mobilePhone"))))
        mail = _text(user.get("mail"))
        if not user_id or user.get("accountEnabled") is False or not (phones or mail):
            continue
        found.append(entry(user_id, Source.DIRECTORY, region=region,
                           display_name=_text(user.get("displayName")),
                           given_name=_text(user.get("givenName")),
                           surname=_text(user.get("surname")),
                           job_title=_text(user.get("jobTitle")),
                           emails=(mail,) if mail else (), phones=phones))
    return found
