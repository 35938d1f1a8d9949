"""Graph calendar routes: calendarView, events, getSchedule (graph.md 6)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.requests import Request

from m365sim.errors import GraphError
from m365sim.outlook import query as q
from m365sim.outlook.access import (
    CALENDAR_READ,
    Target,
    context_url,
    graph_json,
    json_body,
    target,
)
from m365sim.outlook.model import Instance
from m365sim.outlook.render import BASIC_HIDDEN, EVENT_PROPERTIES, event_json, project
from m365sim.outlook.schedule import parse_request, schedule_information
from m365sim.outlook.service import item_not_found
from m365sim.outlook.timezones import parse_iso

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

PREFIXES = ("/v1.0/users/{user}", "/v1.0/me")
WINDOW_MISSING = ("This request requires a time window specified by the query string "
                  "parameters StartDateTime and EndDateTime.")
_EVENT_ORDER: dict[str, Callable[[Instance], Any]] = {
    "start/datetime": lambda i: i.start,
    "end/datetime": lambda i: i.end,
    "createddatetime": lambda i: i.event.created,
    "lastmodifieddatetime": lambda i: i.event.modified,
    "subject": lambda i: i.event.subject.casefold(),
}


def _window_bound(raw: str, name: str) -> datetime:
    # Offsets in the value count; a value without one is UTC (user-list-calendarview.md).
    moment = parse_iso(raw, name)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _refuse_unsimulated(opts: dict[str, str]) -> None:
    for name in ("filter", "search"):
        if name in opts:
            raise GraphError(400, "BadRequest",
                             f"m365sim does not simulate ${name} on events; use calendarView "
                             "with a time window.")


def _ordered(instances: list[Instance], opts: dict[str, str]) -> list[Instance]:
    text = opts.get("orderby")
    if text is None:
        return instances
    result = list(instances)
    for clause in reversed(text.split(",")):
        parts = clause.split()
        key = _EVENT_ORDER.get(parts[0].lower()) if parts else None
        if key is None or len(parts) > 2 or (len(parts) == 2 and
                                             parts[1].lower() not in ("asc", "desc")):
            raise GraphError(400, "ErrorInvalidProperty",
                             f"The $orderby clause '{clause.strip()}' is not supported.")
        result.sort(key=key, reverse=len(parts) == 2 and parts[1].lower() == "desc")
    return result


def _hidden(found: Target) -> frozenset[str]:
    # Calendars.ReadBasic alone leaves out body and bodyPreview (permissions reference).
    return frozenset() if "Calendars.Read" in found.caller.permissions else BASIC_HIDDEN


def _collection(sim: Simulator, request: Request, found: Target, instances: list[Instance],
                opts: dict[str, str], segment: str) -> JSONResponse:
    query = q.list_query(request, opts, EVENT_PROPERTIES, "event")
    hidden = _hidden(found)
    items = [project(event_json(i, query.zone, base_url=sim.base_url), query.select, hidden)
             for i in _ordered(instances, opts)]
    fragment = f"users('{found.user.id}')/{segment}"
    if query.select:
        fragment += "(" + ",".join(query.select) + ")"
    body = q.page(items, query, request, context=context_url(sim, fragment),
                  base_url=sim.base_url)
    return graph_json(body, headers=query.headers())


def register(app: FastAPI, sim: Simulator) -> None:
    """Add the calendar routes."""

    async def calendar_view(request: Request) -> JSONResponse:
        found = target(sim, request, CALENDAR_READ)
        opts = q.options(request)
        if not opts.get("startdatetime") or not opts.get("enddatetime"):
            raise GraphError(400, "ErrorInvalidParameter", WINDOW_MISSING)
        start = _window_bound(opts["startdatetime"], "StartDateTime")
        end = _window_bound(opts["enddatetime"], "EndDateTime")
        _refuse_unsimulated(opts)
        instances = sim.outlook.instances(found.mailbox, start, end) if end > start else []
        return _collection(sim, request, found, instances, opts, "calendarView")

    async def list_events(request: Request) -> JSONResponse:
        found = target(sim, request, CALENDAR_READ)
        opts = q.options(request)
        _refuse_unsimulated(opts)
        # /events lists single instances and series masters, not occurrences.
        instances = sorted((Instance(e, e.start, e.end) for e in found.mailbox.events.values()),
                           key=lambda i: (i.start, i.id))
        return _collection(sim, request, found, instances, opts, "events")

    async def get_event(request: Request) -> JSONResponse:
        found = target(sim, request, CALENDAR_READ)
        opts = q.options(request)
        event_id = str(request.path_params["event_id"])
        instance = sim.outlook.find_instance(found.mailbox, event_id)
        if instance is None:
            if not event_id.startswith("AAMk"):
                raise GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.")
            raise item_not_found()
        applied: list[str] = []
        zone = q.zone_preference(q.preferences(request), applied)
        select = q.parse_select(opts.get("select"), EVENT_PROPERTIES, "event")
        item = project(event_json(instance, zone, base_url=sim.base_url), select,
                       _hidden(found))
        fragment = f"users('{found.user.id}')/events"
        if select:
            fragment += "(" + ",".join(select) + ")"
        headers = {"Preference-Applied": ", ".join(applied)} if applied else None
        return graph_json({"@odata.context": context_url(sim, fragment + "/$entity"), **item},
                          headers=headers)

    async def get_schedule(request: Request) -> JSONResponse:
        found = target(sim, request, CALENDAR_READ)
        body = await json_body(request)
        schedule = parse_request(body, sim.outlook.max_schedules)
        applied: list[str] = []
        zone = q.zone_preference(q.preferences(request), applied)
        value = []
        for address in schedule.schedules:
            user = sim.outlook.find_by_smtp(found.tenant, address)
            mailbox = sim.outlook.mailbox(found.tenant.id, user.id) if user else None
            value.append(schedule_information(address, mailbox, schedule, zone,
                                              sim.outlook.instances, detailed=True))
        headers = {"Preference-Applied": ", ".join(applied)} if applied else None
        return graph_json({"@odata.context": context_url(
            sim, "Collection(microsoft.graph.scheduleInformation)"), "value": value},
            headers=headers)

    for prefix in PREFIXES:
        for view in ("calendarView", "calendarview", "calendar/calendarView",
                     "calendar/calendarview"):
            app.add_api_route(f"{prefix}/{view}", calendar_view, methods=["GET"])
        for events in ("events", "calendar/events"):
            app.add_api_route(f"{prefix}/{events}", list_events, methods=["GET"])
            app.add_api_route(f"{prefix}/{events}/{{event_id}}", get_event, methods=["GET"])
        for action in ("calendar/getSchedule", "calendar/getschedule"):
            app.add_api_route(f"{prefix}/{action}", get_schedule, methods=["POST"])

