"""Reading a request's body with a cap, before FastAPI parses it (issue 18 §7).

Without it a write key's 20 MB `PUT .../users` was read, parsed and applied whole. Each
route of the API declares its largest body (`x-max-body-bytes` in its OpenAPI entry, else
`DEFAULT_BODY_BYTES`); the route class reads the body up to that many bytes once the key
is checked: a Content-Length above it is refused unread, a chunked body is cut off as soon
as it grows past it. The route never runs, so a refused upload changes nothing.

FastAPI's own `max_body_size` answers in plain text ("Content Too Large") and only once
the route reads; the API promises its JSON error shape for every answer.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.types import Message, Receive

log = logging.getLogger(__name__)

BODY_LIMIT_FIELD = "x-max-body-bytes"
"""The OpenAPI extension giving the largest body an operation accepts, in bytes."""

DEFAULT_BODY_BYTES = 64 * 1024
"""The largest body of a route that declares none (it takes no body, or a small one)."""

_LOG_EVERY = 10.0  # seconds between two log lines about refused bodies


class BodyTooLarge(Exception):
    """The body is larger than the route accepts."""

    def __init__(self, limit: int, size: str) -> None:
        super().__init__(f"the body is larger than the {size_in_words(limit)} this route "
                         "accepts; nothing was changed")
        self.limit = limit
        self.size = size


def body_limit(size: int) -> dict[str, Any]:
    """Return the `openapi_extra` that caps a route's body at `size` bytes (and documents it)."""
    return {BODY_LIMIT_FIELD: size}


def size_in_words(size: int) -> str:
    """Return a byte count as people read it: 16 MiB, 64 KiB, 100 bytes."""
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


async def capped(request: Request, limit: int) -> Request:
    """Return the request with its body read, at most `limit` bytes; raise BodyTooLarge."""
    length = request.headers.get("content-length")
    if length is None and "transfer-encoding" not in request.headers:
        return request  # no body
    if length is not None and (not length.strip().isdigit() or int(length) > limit):
        raise _refused(request, limit, length.strip()[:20])
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _refused(request, limit, f"{len(body)}+ (chunked)")
    return Request(request.scope, _replay(bytes(body), request.receive))


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # waits for the disconnect, as the server's would

    return replay


class _RefusalLog:
    """One log line per 10 s at most: a client retrying in a loop must not flood the log."""

    def __init__(self) -> None:
        self.logged_at = -_LOG_EVERY
        self.unlogged = 0

    def write(self, line: str) -> None:
        now = time.monotonic()
        if now - self.logged_at < _LOG_EVERY:
            self.unlogged += 1
            return
        suffix = f" ({self.unlogged} more since the last such line)" if self.unlogged else ""
        self.logged_at, self.unlogged = now, 0
        log.warning("%s%s", line, suffix)


_log = _RefusalLog()


def _refused(request: Request, limit: int, size: str) -> BodyTooLarge:
    client = request.client.host if request.client is not None else "unknown"
    name = getattr(request.state, "api_client", None)
    who = f"API client {name.name!r} at {client}" if name is not None else client
    _log.write(f"refused a body of {size} bytes for {request.method} {request.url.path} "
               f"from {who}: the route accepts {limit} bytes")
    return BodyTooLarge(limit, size)
