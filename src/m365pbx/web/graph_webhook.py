"""The Graph webhook endpoints: the validation handshake, notifications, lifecycle events."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from m365pbx.graph.notifications import MAX_BODY_BYTES, validation_echo
from m365pbx.sync.teams_to_pbx.receiver import NotificationReceiver


def webhook_router(receiver: NotificationReceiver, *, path: str, lifecycle_path: str) -> APIRouter:
    """Routes at `path` (notifications) and `lifecycle_path` (lifecycle events)."""
    router = APIRouter()

    async def handle(request: Request) -> Response:
        token = request.query_params.get("validationToken")
        if token is not None:
            # graph.md 4.1: echo the decoded token as text/plain within 10 s, nothing else.
            echo = validation_echo(token)
            if echo is None:
                verdict = receiver.refuse(
                    "malformed", 400, "validation request with an empty or over-long token",
                    source=request.client.host if request.client is not None else None)
                return PlainTextResponse(verdict.reason, status_code=verdict.status)
            return PlainTextResponse(echo, status_code=200)
        source = request.client.host if request.client is not None else None
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return too_large(source)
        body = bytearray()
        # A chunked body has no length up front: stop reading once it is too large.
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return too_large(source)
        verdict = await receiver.receive(bytes(body), source=source)
        return PlainTextResponse(verdict.reason, status_code=verdict.status)

    def too_large(source: str | None) -> Response:
        verdict = receiver.refuse("too_large", 413, "body larger than the "
                                  f"{MAX_BODY_BYTES} bytes accepted", source=source)
        return PlainTextResponse(verdict.reason, status_code=verdict.status)

    async def not_here() -> Response:
        # Admins check the URL with a browser: a GET must not look like a working endpoint.
        return PlainTextResponse("not found", status_code=404)

    for route in {path, lifecycle_path}:
        router.add_api_route(route, handle, methods=["POST"], include_in_schema=False)
        router.add_api_route(route, not_here, methods=["GET"], include_in_schema=False)
    return router
