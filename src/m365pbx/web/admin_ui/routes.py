"""The admin UI's routes under /admin: sign-in, overview, people, API keys, audit trail.

Server-rendered with Jinja2 (autoescaped); the little JavaScript there is refreshes the
lights (static/admin.js). Every page needs a session (else: to /admin/login), every POST
its CSRF token, every answer forbids framing and caching.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from m365pbx.check import Finding, worst
from m365pbx.clock import Clock
from m365pbx.config.fields import check_slug
from m365pbx.core.status import PartStatus
from m365pbx.pbx.api.keys import Scope, parse_scopes
from m365pbx.pbx.api.view import PersonPresence
from m365pbx.service.admin_edits import AdminEdits
from m365pbx.service.admin_signin import UnknownNames, audit_sign_in, check_sign_in
from m365pbx.service.api_keys import create_api_client, revoke_api_client
from m365pbx.service.balance import ClusterView
from m365pbx.service.matching_view import ConnectionMatching
from m365pbx.service.person_explain import PersonExplanation
from m365pbx.service.presence_view import ShownChange
from m365pbx.service.reconfigure import Reconfigurer
from m365pbx.store import Repositories, Store
from m365pbx.store.errors import ConflictError, NotFoundError
from m365pbx.web.admin_ui.cluster import add_cluster_routes
from m365pbx.web.admin_ui.editing import Kit, add_editing_routes
from m365pbx.web.admin_ui.forms import HEADERS, FormLimitRoute, Refused, one, read_form
from m365pbx.web.admin_ui.live import CLOSE_REFUSED, same_origin, stream_changes
from m365pbx.web.admin_ui.overview import PEOPLE_PER_ACCOUNT, groups
from m365pbx.web.admin_ui.sessions import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    AdminSession,
    SessionBook,
    new_token,
    same_token,
)

log = logging.getLogger(__name__)

PREFIX = "/admin"
_STATIC = {"admin.css": "text/css", "admin.js": "text/javascript"}


@dataclass
class AdminUi:
    """What the admin UI reads and changes."""

    store: Store
    clock: Clock
    statuses: Callable[[], list[PartStatus]]
    people: Callable[[], list[PersonPresence]]
    secure_cookies: bool = False
    # Why the PBX shows what it shows for one person (by id); None: not offered.
    explain: Callable[[int], PersonExplanation | None] | None = None
    # One person's last shown changes, newest first; None: not offered.
    history: Callable[[int], list[ShownChange]] | None = None
    # The last matching per connection; None: not offered.
    matching: Callable[[], list[ConnectionMatching]] | None = None
    # `m365pbx check` run inside the service; None: not offered.
    check: Callable[[], Awaitable[list[Finding]]] | None = None
    # Every presence change from now on (the live view); None: not offered.
    changes: Callable[[], AsyncIterator[PersonPresence]] | None = None
    # Mapping overlays, pins and exclusions edited here; None: not offered.
    edits: AdminEdits | None = None
    # The configuration file applied again while running; None: not offered.
    configuration: Reconfigurer | None = None
    # Which node holds which job (several nodes); None: one node, not offered.
    cluster: Callable[[], Awaitable[ClusterView]] | None = None

    def __post_init__(self) -> None:
        self.sessions = SessionBook(self.store, self.clock)
        self.unknown_names = UnknownNames()
        self.last_check: tuple[datetime, list[Finding], str] | None = None  # when, what, who
        self._checking = asyncio.Lock()
        self.templates = Environment(loader=PackageLoader("m365pbx.web.admin_ui", "templates"),
                                     autoescape=select_autoescape(default=True),
                                     trim_blocks=True, lstrip_blocks=True)


def admin_ui_router(ui: AdminUi) -> APIRouter:
    """The routes of the admin UI (include it only when `admin.enabled`)."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=FormLimitRoute)
    static = {name: resources.files("m365pbx.web.admin_ui").joinpath("static", name)
              .read_bytes() for name in _STATIC}

    def page(template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        html = ui.templates.get_template(template).render(**values)
        return HTMLResponse(html, status_code=status_code, headers=HEADERS)

    async def session_of(request: Request) -> AdminSession | None:
        return await ui.sessions.find(request.cookies.get(SESSION_COOKIE))

    def to_login() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/login", status_code=303, headers=HEADERS)

    async def signed_in_as(name: str) -> RedirectResponse:
        response = RedirectResponse(PREFIX, status_code=303, headers=HEADERS)
        token = await ui.sessions.open(name)
        response.set_cookie(SESSION_COOKIE, token, path=PREFIX, httponly=True,
                            samesite="strict", secure=ui.secure_cookies)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
        return response

    async def checked_form(request: Request, session: AdminSession) -> dict[str, list[str]]:
        form = await read_form(request)
        if not same_token(session.csrf, one(form, "csrf")):
            log.warning("admin UI: %s %s refused: no valid CSRF token (admin %r)",
                        request.method, request.url.path, session.name)
            raise Refused
        return form

    def refused() -> HTMLResponse:
        return HTMLResponse("<h1>403: this form is stale or was not sent from the admin UI; "
                            "reload the page and try again</h1>", status_code=403,
                            headers=HEADERS)

    def common(session: AdminSession, active: str) -> dict[str, Any]:
        return {"admin": session.name, "csrf": session.csrf, "active": active,
                "cluster": ui.cluster is not None}

    kit = Kit(page, session_of, to_login, checked_form, refused, common)
    add_editing_routes(router, ui, kit)
    add_cluster_routes(router, ui, kit)

    @router.get("/static/{name}")
    async def static_file(name: str) -> Response:
        if name not in static:
            return Response(status_code=404)
        return Response(static[name], media_type=_STATIC[name],
                        headers={"X-Content-Type-Options": "nosniff"})

    @router.get("/login")
    async def login_page(request: Request) -> Response:
        token = new_token()
        response = page("login.html", csrf=token, error=None)
        response.set_cookie(LOGIN_CSRF_COOKIE, token, path=PREFIX, httponly=True,
                            samesite="strict", secure=ui.secure_cookies)
        return response

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await read_form(request)
        if not same_token(request.cookies.get(LOGIN_CSRF_COOKIE), one(form, "csrf")):
            log.warning("admin UI: a sign-in without a valid CSRF token was refused")
            return refused()
        # Admin names are at most 100 characters; the audit trail keeps no more of a guess.
        name, password = one(form, "name").strip()[:100], one(form, "password")
        result = await check_sign_in(ui.store, name, password, ui.clock.now(),
                                     ui.unknown_names)
        if result.ok:
            return await signed_in_as(name)
        token = new_token()
        response = page("login.html", status_code=401, csrf=token, error=result.shown,
                        name=name)
        response.set_cookie(LOGIN_CSRF_COOKIE, token, path=PREFIX, httponly=True,
                            samesite="strict", secure=ui.secure_cookies)
        return response

    @router.get("/link/{token}")
    async def one_time_link(token: str) -> Response:
        name = await ui.sessions.use_link(token)
        if name is None:
            return to_login()

        async def work(tx: Repositories) -> None:
            await audit_sign_in(tx, name, now=ui.clock.now(), ok=True, how="one-time link")

        await ui.store.write(work, what=f"the sign-in of admin {name!r}")
        return await signed_in_as(name)

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        session = await session_of(request)
        if session is None:
            return to_login()
        try:
            await checked_form(request, session)
        except Refused:
            return refused()
        await ui.sessions.close(request.cookies.get(SESSION_COOKIE))
        response = to_login()
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    @router.get("")
    async def overview(request: Request) -> Response:
        session = await session_of(request)
        if session is None:
            return to_login()
        return page("overview.html", groups=groups(ui.statuses()),
                    per_account=PEOPLE_PER_ACCOUNT, **common(session, "overview"))

    @router.get("/lights")
    async def lights(request: Request) -> Response:
        session = await session_of(request)
        if session is None:
            return to_login()
        return page("_lights.html", groups=groups(ui.statuses()),
                    per_account=PEOPLE_PER_ACCOUNT)

    @router.get("/people")
    async def people(request: Request, q: str = "") -> Response:
        session = await session_of(request)
        if session is None:
            return to_login()
        wanted = q.strip().casefold()
        found = [p for p in ui.people() if not wanted or any(
            wanted in (value or "").casefold()
            for value in (p.display_name, p.key, p.connection, p.teams_user_id))]
        found.sort(key=lambda p: ((p.display_name or "").casefold(), p.connection, p.key))
        return page("people.html", people=found[:200], total=len(found), q=q,
                    **common(session, "people"))

    @router.get("/people/{person_id}")
    async def person(request: Request, person_id: int) -> Response:
        session = await session_of(request)
        if session is None:
            return to_login()
        found = next((p for p in ui.people() if p.person_id == person_id), None)
        if found is None:
            return page("person.html", status_code=404, person=None,
                        **common(session, "people"))
        why = None if ui.explain is None else ui.explain(person_id)
        history = [] if ui.history is None else ui.history(person_id)
        return page("person.html", person=found, why=why, history=history,
                    **common(session, "people"))

    @router.get("/check")
    async def check_page(request: Request) -> Response:
        session = await session_of(request)
        if session is None:
            return to_login()
        return page("check.html", last=ui.last_check, offered=ui.check is not None,
                    **common(session, "check"))

    @router.post("/check")
    async def run_check(request: Request) -> Response:
        session = await session_of(request)
        if session is None:
            return to_login()
        try:
            await checked_form(request, session)
        except Refused:
            return refused()
        if ui.check is not None:
            async with ui._checking:  # one run at a time; a second click waits for it
                findings = await ui.check()
                ui.last_check = (ui.clock.now(), findings, session.name)
            log.info("admin %r ran the check: %s", session.name, worst(findings).value)
        return RedirectResponse(f"{PREFIX}/check", status_code=303, headers=HEADERS)

    @router.get("/live")
    async def live(request: Request) -> Response:
        session = await session_of(request)
        if session is None:
            return to_login()
        return page("live.html", offered=ui.changes is not None, **common(session, "live"))

    @router.websocket("/live/changes")
    async def live_changes(websocket: WebSocket) -> None:
        session = await ui.sessions.find(websocket.cookies.get(SESSION_COOKIE))
        if session is None or ui.changes is None or not same_origin(websocket):
            log.warning("admin UI: a live view socket was refused (%s)",
                        "no session" if session is None else "another origin")
            await websocket.close(code=CLOSE_REFUSED)
            return
        await websocket.accept()
        await stream_changes(websocket, ui.changes(), ui.clock.now)

    @router.get("/audit")
    async def audit(request: Request) -> Response:
        session = await session_of(request)
        if session is None:
            return to_login()
        async with ui.store.transaction() as tx:
            events = await tx.audit.list_recent(limit=200)
        return page("audit.html", events=events, **common(session, "audit"))

    @router.get("/api-keys")
    async def api_keys(request: Request) -> Response:
        session = await session_of(request)
        if session is None:
            return to_login()
        return await api_keys_page(session)

    async def api_keys_page(session: AdminSession, *, created: tuple[str, str] | None = None,
                            error: str | None = None) -> HTMLResponse:
        async with ui.store.transaction() as tx:
            clients = await tx.api_clients.list_all()
        return page("api_keys.html", status_code=400 if error else 200, clients=clients,
                    created=created, error=error, scopes=[s.value for s in Scope],
                    **common(session, "api-keys"))

    @router.post("/api-keys")
    async def create_api_key(request: Request) -> Response:
        session = await session_of(request)
        if session is None:
            return to_login()
        try:
            form = await checked_form(request, session)
        except Refused:
            return refused()
        name = one(form, "name").strip()
        try:
            name = check_slug(name)
            scopes = parse_scopes(form.get("scope") or [])
            if not scopes:
                raise ValueError("choose at least one scope")
        except ValueError as exc:
            return await api_keys_page(session, error=str(exc))

        async def work(tx: Repositories) -> str:
            return await create_api_client(tx, name, scopes, now=ui.clock.now(),
                                           actor=f"admin {session.name}")

        try:
            key = await ui.store.write(work, what=f"the API client {name!r}")
        except ConflictError as exc:
            return await api_keys_page(session, error=str(exc))
        log.info("admin %r created API client %r", session.name, name)
        return await api_keys_page(session, created=(name, key))

    @router.post("/api-keys/revoke")
    async def revoke_api_key(request: Request) -> Response:
        session = await session_of(request)
        if session is None:
            return to_login()
        try:
            form = await checked_form(request, session)
        except Refused:
            return refused()
        name = one(form, "name")

        async def work(tx: Repositories) -> bool:
            return await revoke_api_client(tx, name, now=ui.clock.now(),
                                           actor=f"admin {session.name}")

        try:
            await ui.store.write(work, what=f"the API client {name!r}")
        except NotFoundError as exc:
            return await api_keys_page(session, error=str(exc))
        log.info("admin %r revoked API client %r", session.name, name)
        return RedirectResponse(f"{PREFIX}/api-keys", status_code=303, headers=HEADERS)

    return router
