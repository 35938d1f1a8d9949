"""Contact search and caller lookup for PBX apps: `/api/v1/contacts` and `/api/v1/lookup`.

Both need a key with the `contacts` scope and name the person asking (`person=<PBX key>`):
a person sees their own Outlook contacts, the directory and the organisational contacts,
never another person's contacts (the index holds each person's contacts apart).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field

from m365pbx.core.contacts import EXACT, PREFIX, ContactEntry, ContactIndex, Source, Viewer
from m365pbx.pbx.api.guard import ERROR_RESPONSES, ApiError, guarded_route_class
from m365pbx.pbx.api.guard import requires as needs
from m365pbx.pbx.api.keys import ApiKeyChecker, Scope
from m365pbx.pbx.api.redact import install_key_redaction
from m365pbx.pbx.api.schemas import ErrorBody

log = logging.getLogger(__name__)

PREFIX_PATH = "/api/v1"
MAX_QUERY = 200  # characters of a search; longer is refused, not cut
MAX_NUMBER = 64  # characters of a number to look up
MAX_PAGE = 100
MAX_LOOKUP_MATCHES = 10
_BEARER = [Depends(HTTPBearer(auto_error=False, description="an API key: m365pbx_..."))]

ViewersOf = Callable[[str, str | None], list[Viewer]]
"""The viewers a PBX key stands for (one per connection it is on, with contacts on)."""

PersonKey = Annotated[str, Query(description="the PBX key of the person asking")]
ConnectionFilter = Annotated[
    str | None, Query(max_length=100, description="the person's PBX connection, if the key "
                      "exists on several")]


@dataclass
class ContactCounters:
    """What /metrics shows of the contact API."""

    searches: int = 0
    lookups: int = 0
    lookup_hits: int = 0


class PhoneOut(BaseModel):
    """A number as written in the contact, its kind, and its normalised form."""

    kind: str = Field(examples=["business"])
    number: str = Field(examples=["030 1234567"])
    e164: str | None = Field(examples=["+49301234567"],
                             description="E.164 (with ;ext= for an extension), if readable")


class ContactOut(BaseModel):
    """One contact the person may see."""

    id: str
    source: Source = Field(description="personal (own Outlook contacts), directory or "
                           "organisation (organisational contacts)")
    display_name: str
    company: str = ""
    job_title: str = ""
    emails: list[str] = []
    phones: list[PhoneOut] = []

    @classmethod
    def of(cls, entry: ContactEntry) -> ContactOut:
        """The model of an index entry."""
        return cls(id=entry.id, source=entry.source, display_name=entry.display_name,
                   company=entry.company, job_title=entry.job_title, emails=list(entry.emails),
                   phones=[PhoneOut(kind=p.kind, number=p.written,
                                    e164=p.key if p.key and not p.key.startswith("#") else None)
                           for p in entry.phones])


class RankedContactOut(ContactOut):
    """A search result with how it matched."""

    match: Literal["exact", "prefix", "fuzzy"]


class ContactsPageOut(BaseModel):
    """A page of ranked search results."""

    person: str
    total: int = Field(description="results in all")
    offset: int
    limit: int
    contacts: list[RankedContactOut]


class LookupOut(BaseModel):
    """Whose number it is: the best name, where it came from, and whether others share it."""

    number: str | None = Field(description="the number normalised: E.164 (with ;ext=), or its "
                               "digits where no country reads it; null if unreadable")
    found: bool
    name: str | None = None
    source: Source | None = None
    ambiguous: bool = Field(False, description="several contacts of that source have it")
    matches: list[ContactOut] = Field([], description=f"up to {MAX_LOOKUP_MATCHES}")


_MATCH_WORDS: dict[int, Literal["exact", "prefix", "fuzzy"]] = {
    EXACT: "exact", PREFIX: "prefix"}


def contacts_router(index: ContactIndex, viewers_of: ViewersOf, keys: ApiKeyChecker,
                    counters: ContactCounters | None = None) -> APIRouter:
    """Return the router of `/api/v1/contacts` and `/api/v1/lookup`."""
    counts = counters if counters is not None else ContactCounters()
    # The web server logs each request's query string: searched names and numbers are masked.
    install_key_redaction()
    router = APIRouter(prefix=PREFIX_PATH, tags=["contacts"],
                       route_class=guarded_route_class(keys), responses=ERROR_RESPONSES)

    def viewer(person: str, connection: str | None) -> Viewer:
        if not person.strip() or len(person) > 255:
            raise ApiError(400, "invalid-person", "person must be a PBX key of 1 to 255 "
                           "characters")
        found = viewers_of(person, connection)
        if not found:
            where = f" on connection {connection!r}" if connection else ""
            raise ApiError(404, "unknown-person", f"there is no person with key {person!r}"
                           f"{where} whose connection has contacts switched on")
        if len({(v.owner, v.tenant) for v in found}) > 1:
            raise ApiError(400, "ambiguous-key", f"key {person!r} exists on several "
                           "connections; add ?connection=")
        return found[0]

    @router.get(
        "/contacts",
        response_model=ContactsPageOut,
        dependencies=_BEARER,
        openapi_extra=needs(Scope.CONTACTS),
        responses={404: {"model": ErrorBody, "description": "Unknown person"},
                   400: {"model": ErrorBody, "description": "Empty or too long query"}},
    )
    async def search(
        person: PersonKey,
        q: Annotated[str, Query(description="words (names, company, mail) or a number")] = "",
        connection: ConnectionFilter = None,
        offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    ) -> ContactsPageOut:
        """The person's contacts, directory and org contacts matching `q`, best first."""
        if not q.strip():
            raise ApiError(400, "empty-query", "q must contain a word or a number")
        if len(q) > MAX_QUERY:
            raise ApiError(400, "query-too-long",
                           f"q has {len(q)} characters; at most {MAX_QUERY} are searched")
        who = viewer(person, connection)
        page = index.search(who, q, offset=offset, limit=limit)
        counts.searches += 1
        return ContactsPageOut(
            person=person, total=page.total, offset=offset, limit=limit,
            contacts=[RankedContactOut(**ContactOut.of(hit.entry).model_dump(),
                                       match=_MATCH_WORDS.get(hit.rank, "fuzzy"))
                      for hit in page.hits])

    @router.get(
        "/lookup",
        response_model=LookupOut,
        dependencies=_BEARER,
        openapi_extra=needs(Scope.CONTACTS),
        responses={404: {"model": ErrorBody, "description": "Unknown person"},
                   400: {"model": ErrorBody, "description": "Empty or too long number"}},
    )
    async def lookup(
        person: PersonKey,
        number: Annotated[str, Query(description="the calling number, in any format")] = "",
        connection: ConnectionFilter = None,
    ) -> LookupOut:
        """The name of whoever has `number`: own contacts, then directory, then org contacts."""
        if not number.strip():
            raise ApiError(400, "empty-number", "number must not be empty")
        if len(number) > MAX_NUMBER:
            raise ApiError(400, "number-too-long",
                           f"number has {len(number)} characters; at most {MAX_NUMBER}")
        who = viewer(person, connection)
        found = index.lookup(who, number)
        counts.lookups += 1
        best = found.found
        shown = found.number.lstrip("#") if found.number is not None else None
        if best is None:
            return LookupOut(number=shown, found=False)
        counts.lookup_hits += 1
        return LookupOut(number=shown, found=True, name=best.display_name,
                         source=found.source, ambiguous=len(found.matches) > 1,
                         matches=[ContactOut.of(e) for e in found.matches[:MAX_LOOKUP_MATCHES]])

    return router
