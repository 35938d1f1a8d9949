"""The admin UI's forms: their size limit, reading them, the CSRF refusal, the headers
every answer carries."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

log = logging.getLogger(__name__)

HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Refused(Exception):
    """A POST without the right CSRF token."""


class TooLarge(Exception):
    """A form body beyond MAX_FORM bytes."""


MAX_FORM = 16 * 1024  # the UI's forms are a few hundred bytes


async def read_form(request: Request) -> dict[str, list[str]]:
    """The urlencoded form of `request` (TooLarge beyond MAX_FORM bytes)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise TooLarge
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=50)


def one(form: dict[str, list[str]], key: str) -> str:
    """The first value of `key` in a form, or ""."""
    return (form.get(key) or [""])[0]


class FormLimitRoute(APIRoute):
    """Answers 413 to a form body beyond MAX_FORM instead of reading it all."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, with oversized forms refused."""
        handler = super().get_route_handler()

        async def limited(request: Request) -> Response:
            try:
                return await handler(request)
            except TooLarge:
                log.warning("admin UI: a form of more than %d bytes to %s was refused",
                            MAX_FORM, request.url.path)
                return Response("form too large", status_code=413, headers=HEADERS)

        return limited
