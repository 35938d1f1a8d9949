"""The admin UI's editing pages: a PBX connection's mapping (explain, edit an overlay with
a preview before saving), matching (pin or exclude a person), and applying the
configuration file without a restart."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from m365pbx.core.mapping import MappingError
from m365pbx.core.presence import Activity, Availability, LineState, PbxPresence, ShowAs
from m365pbx.service.mapping_view import Question, answer, draft_text, read_draft
from m365pbx.web.admin_ui.forms import HEADERS, Refused, one
from m365pbx.web.admin_ui.sessions import AdminSession

if TYPE_CHECKING:
    from m365pbx.web.admin_ui.routes import AdminUi

log = logging.getLogger(__name__)

PREFIX = "/admin"
_CHOICES = {"availability": list(Availability), "activity": list(Activity),
            "line": list(LineState), "pbx": list(PbxPresence), "show_as": list(ShowAs)}


@dataclass(frozen=True)
class Kit:
    """The shared helpers of the admin UI's routes (routes.py)."""

    page: Callable[..., HTMLResponse]
    session_of: Callable[[Request], Awaitable[AdminSession | None]]
    to_login: Callable[[], RedirectResponse]
    checked_form: Callable[[Request, AdminSession], Awaitable[dict[str, list[str]]]]
    refused: Callable[[], HTMLResponse]
    common: Callable[[AdminSession, str], dict[str, Any]]


def _question(form: dict[str, list[str]]) -> Question:
    return Question.parse(one(form, "availability"), one(form, "activity"), one(form, "line"),
                          one(form, "pbx"), one(form, "show_as"))


def _query(connection: str, question: Question, **extra: str) -> str:
    return urlencode({"connection": connection, "availability": question.availability,
                      "activity": question.activity, "line": question.line,
                      "pbx": question.pbx, "show_as": question.show_as} | extra)


def add_editing_routes(router: APIRouter, ui: AdminUi, kit: Kit) -> None:
    """Add the mapping and matching pages to the admin UI's router."""

    async def signed_form(request: Request) -> tuple[AdminSession, dict[str, list[str]]] | Response:
        """A POST's admin and form, or the answer that refuses it (sign-in, CSRF)."""
        session = await kit.session_of(request)
        if session is None:
            return kit.to_login()
        try:
            return session, await kit.checked_form(request, session)
        except Refused:
            return kit.refused()

    async def mapping_page(session: AdminSession, chosen: str, question: Question, *,
                           text: str | None = None, preview: bool = False,
                           problems: tuple[str, ...] = (), saved: bool = False,
                           status_code: int = 200) -> HTMLResponse:
        edits = ui.edits
        connections = [] if edits is None else edits.connections()
        stored = None
        if edits is not None and chosen:
            async with ui.store.transaction() as tx:
                stored = await tx.mapping_overlays.find(chosen)
        compiled = None if edits is None or not chosen else edits.compiled(chosen)
        draft_compiled = None
        if preview and edits is not None and not problems:
            draft = read_draft(text or "")
            draft_compiled = edits.compiled(chosen, draft.overlay, draft=True)
        shown = draft_compiled or compiled
        return kit.page(
            "mapping.html", status_code=status_code, connections=connections, chosen=chosen,
            question=question, choices=_CHOICES, editable=edits is not None,
            rules=None if shown is None else shown.rules,
            answer=None if compiled is None else answer(compiled, question),
            draft_answer=None if draft_compiled is None else answer(draft_compiled, question),
            preview=preview, problems=problems, saved=saved, stored=stored,
            text=draft_text(None if stored is None else stored.document) if text is None
            else text, **kit.common(session, "mapping"))

    @router.get("/mapping")
    async def mapping(request: Request, connection: str = "", availability: str = "",
                      activity: str = "", line: str = "", pbx: str = "",
                      show_as: str = "", saved: str = "") -> Response:
        session = await kit.session_of(request)
        if session is None:
            return kit.to_login()
        names = [] if ui.edits is None else ui.edits.connections()
        chosen = connection if connection in names else next(iter(names), "")
        return await mapping_page(session, chosen, Question.parse(availability, activity,
                                                                  line, pbx, show_as),
                                  saved=saved == "1")

    @router.post("/mapping")
    async def edit_mapping(request: Request) -> Response:
        signed = await signed_form(request)
        if isinstance(signed, Response):
            return signed
        session, form = signed
        edits = ui.edits
        connection, text = one(form, "connection"), one(form, "overlay")
        question = _question(form)
        if edits is None or connection not in edits.connections():
            return await mapping_page(session, "", question, status_code=404,
                                      problems=(f"there is no PBX connection {connection!r}",))
        draft = read_draft(text)
        if draft.problems:
            return await mapping_page(session, connection, question, text=text, preview=True,
                                      problems=draft.problems, status_code=400)
        if one(form, "action") != "save":
            return await mapping_page(session, connection, question, text=text, preview=True)
        try:
            await edits.save_overlay(connection, draft, actor=f"admin {session.name}")
        except MappingError as exc:
            return await mapping_page(session, connection, question, text=text, preview=True,
                                      problems=tuple(exc.problems), status_code=400)
        return RedirectResponse(f"{PREFIX}/mapping?{_query(connection, question, saved='1')}",
                                status_code=303, headers=HEADERS)

    @router.get("/matching")
    async def matching(request: Request) -> Response:
        session = await kit.session_of(request)
        if session is None:
            return kit.to_login()
        return await matching_page(session)

    async def matching_page(session: AdminSession, *, error: str | None = None
                            ) -> HTMLResponse:
        views = [] if ui.matching is None else ui.matching()
        overrides = [] if ui.edits is None else await ui.edits.overrides()
        return kit.page("matching.html", status_code=400 if error else 200, views=views,
                        overrides=overrides, editable=ui.edits is not None, error=error,
                        **kit.common(session, "matching"))

    async def change_matching(request: Request, what: str) -> Response:
        signed = await signed_form(request)
        if isinstance(signed, Response):
            return signed
        session, form = signed
        if ui.edits is None:
            return Response(status_code=404, headers=HEADERS)
        connection, key = one(form, "connection"), one(form, "key")
        actor = f"admin {session.name}"
        try:
            if what == "remove":
                await ui.edits.remove_override(connection, key, actor=actor)
            else:
                teams_user = one(form, "teams_user") if what == "pin" else None
                await ui.edits.set_override(connection, key, teams_user=teams_user,
                                            actor=actor)
        except (LookupError, ValueError) as exc:
            return await matching_page(session, error=str(exc))
        return RedirectResponse(f"{PREFIX}/matching", status_code=303, headers=HEADERS)

    @router.post("/matching/pin")
    async def pin(request: Request) -> Response:
        return await change_matching(request, "pin")

    @router.post("/matching/exclude")
    async def exclude(request: Request) -> Response:
        return await change_matching(request, "exclude")

    @router.post("/matching/remove")
    async def remove(request: Request) -> Response:
        return await change_matching(request, "remove")

    @router.get("/configuration")
    async def configuration(request: Request) -> Response:
        session = await kit.session_of(request)
        if session is None:
            return kit.to_login()
        reconfigure = ui.configuration
        return kit.page("configuration.html", offered=reconfigure is not None,
                        file=None if reconfigure is None else reconfigure.settings.source_file,
                        last=None if reconfigure is None else reconfigure.last,
                        **kit.common(session, "configuration"))

    @router.post("/configuration")
    async def apply_configuration(request: Request) -> Response:
        signed = await signed_form(request)
        if isinstance(signed, Response):
            return signed
        session, _ = signed
        if ui.configuration is not None:
            await ui.configuration.apply(f"admin {session.name}")
        return RedirectResponse(f"{PREFIX}/configuration", status_code=303, headers=HEADERS)
