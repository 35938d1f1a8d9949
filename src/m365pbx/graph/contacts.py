"""Contact reads (graph.md 7): a person's folders, each folder's delta, organisational contacts.

A person's contacts are read folder by folder through `contactFolders/{id}/contacts/delta`:
the first round lists every contact, later rounds only what changed (removed ones as
`@removed`). `/users/{id}/contacts` alone would miss every folder but the default one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from m365pbx.graph.client import GraphClient

# Only what the index reads; a contact's notes, photo and addresses stay in Outlook.
CONTACT_FIELDS = ("id", "displayName", "givenName", "surname", "companyName", "jobTitle",
                  "emailAddresses", "businessPhones", "homePhones", "mobilePhone")
ORG_CONTACT_FIELDS = ("id", "displayName", "givenName", "surname", "companyName",
                      "jobTitle", "mail", "phones")
# The default folder's well-known name (it is every other folder's parent).
DEFAULT_FOLDER = "contacts"
PAGE_SIZE = "100"


@dataclass(frozen=True, slots=True)
class GraphContact:
    """A personal or organisational contact as read, with its numbers as (kind, written)."""

    id: str
    display_name: str = ""
    given_name: str = ""
    surname: str = ""
    company: str = ""
    job_title: str = ""
    emails: tuple[str, ...] = ()
    phones: tuple[tuple[str, str], ...] = ()


@dataclass
class ContactChanges:
    """One delta round of a folder: changed or new contacts, removed ids, the next link."""

    changed: list[GraphContact] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    delta_link: str = ""


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def parse_contact(data: dict[str, Any]) -> GraphContact:
    """A GraphContact from a contact's JSON (resources/contact.md)."""
    emails = tuple(
        _text(item.get("address")) for item in data.get("emailAddresses") or ()
        if isinstance(item, dict) and _text(item.get("address")))
    phones: list[tuple[str, str]] = []
    for kind, key in (("business", "businessPhones"), ("home", "homePhones")):
        phones.extend((kind, _text(number)) for number in data.get(key) or ()
                      if _text(number))
    if _text(data.get("mobilePhone")):
        phones.append(("mobile", _text(data.get("mobilePhone"))))
    return GraphContact(
        id=_text(data.get("id")), display_name=_text(data.get("displayName")),
        given_name=_text(data.get("givenName")), surname=_text(data.get("surname")),
        company=_text(data.get("companyName")), job_title=_text(data.get("jobTitle")),
        emails=emails, phones=tuple(phones))


def parse_org_contact(data: dict[str, Any]) -> GraphContact:
    """A GraphContact from an orgContact's JSON (resources/orgcontact.md)."""
    phones = tuple(
        (_text(item.get("type")) or "business", _text(item.get("number")))
        for item in data.get("phones") or ()
        if isinstance(item, dict) and _text(item.get("number")))
    mail = _text(data.get("mail"))
    return GraphContact(
        id=_text(data.get("id")), display_name=_text(data.get("displayName")),
        given_name=_text(data.get("givenName")), surname=_text(data.get("surname")),
        company=_text(data.get("companyName")), job_title=_text(data.get("jobTitle")),
        emails=(mail,) if mail else (), phones=phones)


async def contact_folders(client: GraphClient, user_id: str) -> list[str]:
    """The ids of a person's contact folders: the default one first, then those below it."""
    folders = [DEFAULT_FOLDER]
    async for page in client.pages(f"/v1.0/users/{user_id}/contactFolders",
                                   params={"$select": "id", "$top": PAGE_SIZE}):
        folders.extend(str(item["id"]) for item in page.get("value") or ()
                       if isinstance(item, dict) and item.get("id"))
    return folders


async def folder_delta(client: GraphClient, user_id: str, folder_id: str,
                       link: str | None = None) -> ContactChanges:
    """One delta round of a folder: everything (no link) or what changed since `link`.

    Raises GraphError; `graph.users.delta_link_expired(error)` tells that only a new first
    round helps.
    """
    if link is None:
        path = f"/v1.0/users/{user_id}/contactFolders/{folder_id}/contacts/delta"
        page = await client.get_json(path, params={"$select": ",".join(CONTACT_FIELDS)},
                                     headers={"Prefer": f"odata.maxpagesize={PAGE_SIZE}"})
    else:
        page = await client.get_json(link)
    changes = ContactChanges()
    while True:
        for item in page.get("value") or ():
            if not isinstance(item, dict) or not item.get("id"):
                continue
            if "@removed" in item:
                changes.removed.append(str(item["id"]))
            else:
                changes.changed.append(parse_contact(item))
        following = page.get("@odata.nextLink")
        if not isinstance(following, str):
            changes.delta_link = str(page.get("@odata.deltaLink") or "")
            return changes
        page = await client.get_json(following)


async def org_contacts(client: GraphClient) -> list[GraphContact]:
    """Every organisational contact of the tenant (`/contacts`, OrgContact.Read.All)."""
    found: list[GraphContact] = []
    async for page in client.pages("/v1.0/contacts", params={
            "$select": ",".join(ORG_CONTACT_FIELDS), "$top": "999"}):
        found.extend(parse_org_contact(item) for item in page.get("value") or ()
                     if isinstance(item, dict) and item.get("id"))
    return found


__all__ = [
    "CONTACT_FIELDS",
    "ORG_CONTACT_FIELDS",
    "ContactChanges",
    "GraphContact",
    "contact_folders",
    "folder_delta",
    "org_contacts",
    "parse_contact",
    "parse_org_contact",
]
