"""Mailbox settings: the automatic replies (out of office) of a mailbox, read and changed.

    GET   {p}/mailboxSettings                           automaticRepliesSetting and timeZone
    GET   {p}/mailboxSettings/automaticRepliesSetting   the automatic replies alone
    PATCH {p}/mailboxSettings                           {"automaticRepliesSetting": {...}}

Permissions (api-reference/v1.0/api/user-get-mailboxsettings.md): MailboxSettings.Read or
MailboxSettings.ReadWrite to read, delegated and application; ReadWrite to change
(user-update-mailboxsettings.md). Values follow resources/automaticrepliessetting.md:
`status` disabled, alwaysEnabled or scheduled (compared without case: Microsoft's own
examples write `Scheduled`), `externalAudience` none, contactsOnly or all, and the scheduled
window as dateTimeTimeZone values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.requests import Request

from m365sim.errors import GraphError
from m365sim.outlook.access import Needs, context_url, graph_json, json_body, target
from m365sim.outlook.model import AutomaticReplies
from m365sim.outlook.timezones import date_time_time_zone, parse_date_time_time_zone

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

SETTINGS_READ = Needs(("MailboxSettings.Read", "MailboxSettings.ReadWrite"),
                      ("MailboxSettings.Read", "MailboxSettings.ReadWrite"))
SETTINGS_WRITE = Needs(("MailboxSettings.ReadWrite",), ("MailboxSettings.ReadWrite",))
STATUSES = ("disabled", "alwaysEnabled", "scheduled")
AUDIENCES = ("none", "contactsOnly", "all")
PREFIXES = ("/v1.0/users/{user}", "/v1.0/me")


def _choice(raw: Any, allowed: tuple[str, ...], what: str) -> str:
    folded = {value.casefold(): value for value in allowed}
    if not isinstance(raw, str) or raw.casefold() not in folded:
        raise GraphError(400, "ErrorInvalidRequest",
                         f"'{what}' must be one of: {', '.join(allowed)}.")
    return folded[raw.casefold()]


def changed(current: AutomaticReplies, body: Mapping[str, Any]) -> AutomaticReplies:
    """The settings after a PATCH body's `automaticRepliesSetting` (Graph's spelling or
    snake_case); GraphError 400 for a bad value or a window that ends before it begins."""
    values = {str(key).replace("_", "").casefold(): value for key, value in body.items()}
    result = current
    if "status" in values:
        result = replace(result, status=_choice(values["status"], STATUSES, "status"))
    if "externalaudience" in values:
        result = replace(result, external_audience=_choice(
            values["externalaudience"], AUDIENCES, "externalAudience"))
    if "scheduledstartdatetime" in values:
        start, zone = parse_date_time_time_zone(values["scheduledstartdatetime"],
                                                "scheduledStartDateTime")
        result = replace(result, start=start, time_zone=zone)
    if "scheduledenddatetime" in values:
        end, zone = parse_date_time_time_zone(values["scheduledenddatetime"],
                                              "scheduledEndDateTime")
        result = replace(result, end=end, time_zone=zone)
    if "internalreplymessage" in values:
        result = replace(result, internal_reply=str(values["internalreplymessage"] or ""))
    if "externalreplymessage" in values:
        result = replace(result, external_reply=str(values["externalreplymessage"] or ""))
    if result.start is not None and result.end is not None and result.end <= result.start:
        raise GraphError(400, "ErrorInvalidParameter",
                         "The scheduled end time must be after the scheduled start time.")
    return result


def render(replies: AutomaticReplies, now: datetime) -> dict[str, Any]:
    """The automaticRepliesSetting JSON."""
    start = replies.start or now
    end = replies.end or start + timedelta(days=1)
    return {"status": replies.status, "externalAudience": replies.external_audience,
            "scheduledStartDateTime": date_time_time_zone(start, replies.time_zone),
            "scheduledEndDateTime": date_time_time_zone(end, replies.time_zone),
            "internalReplyMessage": replies.internal_reply,
            "externalReplyMessage": replies.external_reply}


def register(app: FastAPI, sim: Simulator) -> None:
    """Add the mailbox settings routes."""

    async def get_all(request: Request) -> JSONResponse:
        found = target(sim, request, SETTINGS_READ)
        box = found.mailbox
        return graph_json({
            "@odata.context": context_url(sim, f"users('{found.user.id}')/mailboxSettings"),
            "automaticRepliesSetting": render(box.automatic_replies, sim.clock.now()),
            "timeZone": box.time_zone})

    async def get_replies(request: Request) -> JSONResponse:
        found = target(sim, request, SETTINGS_READ)
        return graph_json({
            "@odata.context": context_url(
                sim, f"users('{found.user.id}')/mailboxSettings/automaticRepliesSetting"),
            **render(found.mailbox.automatic_replies, sim.clock.now())})

    async def patch(request: Request) -> JSONResponse:
        found = target(sim, request, SETTINGS_WRITE)
        body = await json_body(request)
        replies = body.get("automaticRepliesSetting") if isinstance(body, dict) else None
        if not isinstance(replies, dict):
            raise GraphError(400, "ErrorInvalidRequest",
                             "m365sim changes only 'automaticRepliesSetting' (an object).")
        box = found.mailbox
        box.automatic_replies = changed(box.automatic_replies, replies)
        return graph_json({
            "@odata.context": context_url(sim, f"users('{found.user.id}')/mailboxSettings"),
            "automaticRepliesSetting": render(box.automatic_replies, sim.clock.now())})

    for prefix in PREFIXES:
        for settings in ("mailboxSettings", "mailboxsettings"):
            app.add_api_route(f"{prefix}/{settings}", get_all, methods=["GET"])
            app.add_api_route(f"{prefix}/{settings}", patch, methods=["PATCH"])
            for part in ("automaticRepliesSetting", "automaticrepliessetting"):
                app.add_api_route(f"{prefix}/{settings}/{part}", get_replies, methods=["GET"])
