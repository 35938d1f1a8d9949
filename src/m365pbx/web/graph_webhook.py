"""The Graph webhook endpoints: the validation handshake, notifications, lifecycle events.

Graph may post thousands of notifications a second: the POST handler is a plain ASGI app
(no FastAPI request parsing nor dependency solving), and `webhook_front` hands those POSTs
to it before the FastAPI app's routing and middleware see them (issue 20: FastAPI's
stack cost about four times the work of the notification itself).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from urllib.parse import parse_qsl

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from m365pbx.graph.notifications import MAX_BODY_BYTES, validation_echo
from m365pbx.sync.teams_to_pbx.receiver import NotificationReceiver, Verdict

log = logging.getLogger(__name__)

_TEXT = (b"content-type", b"text/plain; charset=utf-8")


async def _answer(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [_TEXT, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class WebhookEndpoint:
    """The POST handler of the notification and lifecycle URLs, as a plain ASGI app."""

    def __init__(self, receiver: NotificationReceiver) -> None:
        self.receiver = receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one POST: the validation handshake, or a notification collection."""
        client = scope.get("client")
        source = client[0] if client else None
        query = scope.get("query_string", b"")
        if b"validationToken" in query:
            token = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)).get(
                "validationToken")
            if token is not None:
                await self._validation(send, token, source)
                return
        length = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
                break
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await self._too_large(send, source)
            return
        parts: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            part = message.get("body", b"")
            parts.append(part)
            size += len(part)
            more = message.get("more_body", False)
            # A chunked body has no length up front: stop reading once it is too large.
            if size > MAX_BODY_BYTES:
                await self._too_large(send, source)
                return
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        verdict = await self.receiver.receive(body, source=source)
        await _answer(send, verdict.status, verdict.reason)

    async def _validation(self, send: Send, token: str, source: str | None) -> None:
        # graph.md 4.1: echo the decoded token as text/plain within 10 s, nothing else.
        echo = validation_echo(token)
        if echo is None:
            verdict = self.receiver.refuse(
                "malformed", 400, "validation request with an empty or over-long token",
                source=source)
            await _answer(send, verdict.status, verdict.reason)
            return
        await _answer(send, 200, echo)

    async def _too_large(self, send: Send, source: str | None) -> None:
        verdict: Verdict = self.receiver.refuse(
            "too_large", 413, f"body larger than the {MAX_BODY_BYTES} bytes accepted",
            source=source)
        await _answer(send, verdict.status, verdict.reason)


def webhook_router(receiver: NotificationReceiver, *, path: str, lifecycle_path: str) -> APIRouter:
    """Routes at `path` (notifications) and `lifecycle_path` (lifecycle events)."""
    router = APIRouter()
    endpoint = WebhookEndpoint(receiver)

    async def not_here() -> Response:
        # Admins check the URL with a browser: a GET must not look like a working endpoint.
        return PlainTextResponse("not found", status_code=404)

    for route in {path, lifecycle_path}:
        router.routes.append(Route(route, endpoint, methods=["POST"], include_in_schema=False))
        router.add_api_route(route, not_here, methods=["GET"], include_in_schema=False)
    return router


class WebhookFront:
    """Hands POSTs to the webhook URLs straight to their endpoint, the rest to `app`."""

    def __init__(self, app: ASGIApp, receiver: NotificationReceiver, paths: Iterable[str]
                 ) -> None:
        self.app = app
        self.endpoint = WebhookEndpoint(receiver)
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route one ASGI call."""
        if scope["type"] != "http" or scope["method"] != "POST" or (
                scope["path"] not in self.paths):
            await self.app(scope, receive, send)
            return
        try:
            await self.endpoint(scope, receive, send)
        except Exception:
            # What Starlette's error middleware does for the routes it serves.
            log.exception("the webhook failed to answer a POST to %s", scope["path"])
            with contextlib.suppress(Exception):  # unless the answer had begun
                await _answer(send, 500, "Internal Server Error")
