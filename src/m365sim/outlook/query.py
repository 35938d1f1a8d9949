"""OData query options and `Prefer` preferences as the Outlook endpoints read them.

Outlook pages with `$top`/`$skip` and puts the next `$skip` into `@odata.nextLink`; its
default page size is 10 (concepts/paging.md names Outlook as one of the APIs with a
small default page; the 10 is the value the Outlook endpoints use). The `$` prefix of
system query options is optional in v1.0 (concepts/query-parameters.md), and option
names are matched without regard to case.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from m365sim.errors import GraphError
from m365sim.outlook.timezones import resolve_zone

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000
_PREFERENCE = re.compile(r'\s*([A-Za-z][\w.\-]*)\s*(?:=\s*("([^"]*)"|[^,;]*))?')


def options(request: Request) -> dict[str, str]:
    """The query string as {lower-cased name without '$': value}; a repeated option is a 400."""
    found: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        key = name.lower().removeprefix("$")
        if key in found:
            raise GraphError(400, "BadRequest",
                             f"Query option '{name}' was specified more than once, but it "
                             "must be specified at most once.")
        found[key] = value
    return found


def preferences(request: Request) -> dict[str, str]:
    """The `Prefer` header(s) as {lower-cased preference: value without quotes}."""
    prefs: dict[str, str] = {}
    for header in request.headers.getlist("prefer"):
        for part in header.split(","):
            match = _PREFERENCE.match(part)
            if match and match.group(1):
                value = match.group(3) if match.group(3) is not None else (match.group(2) or "")
                prefs[match.group(1).lower()] = value.strip()
    return prefs


@dataclass
class ListQuery:
    """The options a collection GET understood, plus what it must echo back."""

    top: int | None = None
    skip: int = 0
    select: list[str] | None = None
    count: bool = False
    zone: str = "UTC"
    page_size: int = DEFAULT_PAGE_SIZE
    applied: list[str] = field(default_factory=list)

    def headers(self) -> dict[str, str]:
        """Response headers for the preferences that were honoured."""
        return {"Preference-Applied": ", ".join(self.applied)} if self.applied else {}


def _non_negative_int(name: str, raw: str) -> int:
    if not raw.strip().isdigit():
        raise GraphError(400, "BadRequest",
                         f"Invalid value '{raw}' for query option '${name}': a non-negative "
                         "integer is expected.")
    return int(raw)


def parse_select(raw: str | None, allowed: frozenset[str], type_name: str) -> list[str] | None:
    """The $select list; an unknown property gets Outlook's parse error."""
    if raw is None:
        return None
    names = [name.strip() for name in raw.split(",") if name.strip()]
    by_fold = {name.casefold(): name for name in allowed}
    selected = []
    for name in names:
        proper = by_fold.get(name.casefold())
        if proper is None:
            raise GraphError(400, "RequestBroker--ParseUri",
                             f"Could not find a property named '{name}' on type "
                             f"'microsoft.graph.{type_name}'.")
        selected.append(proper)
    return selected


def zone_preference(prefs: Mapping[str, str], applied: list[str]) -> str:
    """The zone named by `Prefer: outlook.timezone`, or UTC; recorded as applied."""
    zone = prefs.get("outlook.timezone")
    if zone is None:
        return "UTC"
    resolve_zone(zone)
    applied.append(f'outlook.timezone="{zone}"')
    return zone


def list_query(request: Request, opts: Mapping[str, str], allowed: frozenset[str],
               type_name: str) -> ListQuery:
    """Parse $top, $skip, $select, $count and the `Prefer` preferences of a list request."""
    prefs = preferences(request)
    query = ListQuery()
    query.zone = zone_preference(prefs, query.applied)
    if "top" in opts:
        query.top = min(_non_negative_int("top", opts["top"]), MAX_PAGE_SIZE)
    if "skip" in opts:
        query.skip = _non_negative_int("skip", opts["skip"])
    query.select = parse_select(opts.get("select"), allowed, type_name)
    if "count" in opts:
        flag = opts["count"].strip().lower()
        if flag not in ("true", "false"):
            raise GraphError(400, "BadRequest",
                             f"Invalid value '{opts['count']}' for query option '$count'.")
        query.count = flag == "true"
    if "expand" in opts:
        raise GraphError(400, "BadRequest",
                         "m365sim does not simulate $expand on Outlook items.")
    max_page = prefs.get("odata.maxpagesize")
    if query.top is not None:
        query.page_size = query.top
    elif max_page is not None and max_page.isdigit() and int(max_page) > 0:
        query.page_size = min(int(max_page), MAX_PAGE_SIZE)
        query.applied.append(f"odata.maxpagesize={query.page_size}")
    return query


def page(items: list[dict[str, Any]], query: ListQuery, request: Request, *, context: str,
         base_url: str) -> dict[str, Any]:
    """One page of a collection with @odata.context, @odata.count and @odata.nextLink."""
    chosen = items[query.skip:query.skip + query.page_size]
    body: dict[str, Any] = {"@odata.context": context}
    if query.count:
        body["@odata.count"] = len(items)
    body["value"] = chosen
    if query.skip + query.page_size < len(items) and query.page_size > 0:
        params = [(k, v) for k, v in request.query_params.multi_items()
                  if k.lower().removeprefix("$") not in ("skip", "top")]
        params += [("$top", str(query.page_size)), ("$skip", str(query.skip + query.page_size))]
        body["@odata.nextLink"] = f"{base_url}{request.url.path}?{urlencode(params)}"
    return body
