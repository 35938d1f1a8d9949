"""The validation handshake Graph performs before it creates a subscription (graph.md 4.1;
`concepts/includes/change-notifications-delivery-notificationurl-validation.md`).

Graph POSTs `{url}?validationToken=<URL-encoded token>` with `text/plain; charset=utf-8`;
the endpoint must answer within 10 s with 200, `text/plain`, and the decoded token.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from m365sim.errors import GraphError

# Observed answers (microsoftgraph/nodejs-webhooks-sample#158, #350,
# microsoftgraph/java-spring-webhooks-sample#82, splunk/azure-functions-splunk#26).
NOT_200 = ("Subscription validation request failed. Notification endpoint must respond "
           "with 200 OK to validation request.")
MISMATCH = ("Subscription validation request failed. Response must exactly match "
            "validationToken query parameter.")
TIMED_OUT = "Subscription validation request timed out."


def new_token() -> str:
    """An opaque token; its shape (spaces and colons included) follows observed traffic."""
    return ("Validation: Testing client application reachability for subscription "
            f"Request-Id: {uuid.uuid4()}")


def with_token(url: str, token: str) -> str:
    """The URL with `validationToken` appended, keeping any query string it has."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}validationToken={quote(token, safe='')}"


@dataclass(frozen=True)
class HandshakeResult:
    """What happened, for the delivery log."""

    url: str
    status: int | None
    duration_ms: float
    error: str | None


async def validate_endpoint(http: httpx.AsyncClient, url: str, *,
                            timeout_s: float) -> HandshakeResult:
    """POST the validation request; raise Graph's 400 unless the endpoint echoes the token."""
    token = new_token()
    started = time.perf_counter()
    status: int | None = None
    try:
        async with asyncio.timeout(timeout_s):
            response = await http.post(
                with_token(url, token), content=b"",
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
            body = (await response.aread()).decode("utf-8", errors="replace")
        status = response.status_code
    except TimeoutError:
        raise _failure(url, started, None, "InvalidRequest", TIMED_OUT) from None
    except httpx.HTTPError as exc:
        # Chosen: Graph reports the transport error in its message (observed with TLS
        # failures); the simulator names the reason the same way.
        raise _failure(url, started, None, "InvalidRequest",
                       f"Subscription validation request failed. {type(exc).__name__}: "
                       f"{exc or 'the endpoint could not be reached'}") from None
    if status != 200:
        raise _failure(url, started, status, "ValidationError", NOT_200)
    media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "text/plain" or body != token:
        raise _failure(url, started, status, "ValidationError", MISMATCH)
    return HandshakeResult(url, status, (time.perf_counter() - started) * 1000.0, None)


class HandshakeFailed(GraphError):
    """A failed validation: Graph's 400, plus what the delivery log records."""

    def __init__(self, code: str, message: str, result: HandshakeResult) -> None:
        super().__init__(400, code, message)
        self.result = result


def _failure(url: str, started: float, status: int | None, code: str,
             message: str) -> HandshakeFailed:
    result = HandshakeResult(url, status, (time.perf_counter() - started) * 1000.0, message)
    return HandshakeFailed(code, message, result)
