"""The Graph HTTP client: tokens, retries with backoff that honour Retry-After, paging,
error mapping and clock-skew detection.

Retries run on the injected clock rather than a retry library's own sleep, so a test on a
virtual clock sees a 30-second Retry-After pass in no time.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from m365pbx.clock import Clock, SystemClock
from m365pbx.graph.auth import TokenSource
from m365pbx.graph.errors import GraphError, InvalidToken, Throttled, Unavailable, graph_error

log = logging.getLogger(__name__)

GRAPH = "https://graph.microsoft.com"


@dataclass
class RetryPolicy:
    """How hard to try: attempts, exponential backoff with full jitter, and a ceiling."""

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0
    # A Retry-After longer than this is not waited for here: the caller decides.
    max_retry_after: float = 300.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return rng.uniform(0, ceiling)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_from(response: httpx.Response) -> GraphError:
    code, message = "", response.reason_phrase or "error"
    try:
        body = response.json()
        error = body.get("error", {}) if isinstance(body, dict) else {}
        if isinstance(error, dict):
            code = str(error.get("code", ""))
            message = str(error.get("message", message))
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    return graph_error(response.status_code, code, message,
                       request_id=response.headers.get("request-id"),
                       retry_after=_retry_after(response))


class GraphClient:
    """Calls Graph for one credential (application or a service account)."""

    def __init__(
        self,
        tokens: TokenSource,
        http: httpx.AsyncClient,
        *,
        base_url: str = GRAPH,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.tokens = tokens
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.clock = clock or SystemClock()
        self.retry = retry or RetryPolicy()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        # Seconds Graph's Date header is ahead of our clock (negative: behind).
        self.clock_skew: float | None = None
        self.requests_sent = 0
        # 429 answers seen (each retried one counts): what an admin reads as "throttled".
        self.throttled = 0

    def url(self, path: str) -> str:
        """An absolute URL for a path like `/v1.0/users` (absolute URLs pass unchanged)."""
        return path if path.startswith("https://") or path.startswith("http://") else (
            f"{self.base_url}{path if path.startswith('/') else '/' + path}"
        )

    def _note_date(self, response: httpx.Response) -> None:
        value = response.headers.get("date")
        if not value:
            return
        try:
            server: datetime = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return
        self.clock_skew = (server - self.clock.now()).total_seconds()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send a request with retries; return the 2xx response or raise a GraphError."""
        reauthenticated = False
        attempt = 0
        while True:
            attempt += 1
            token = await self.tokens.token()
            request_headers = {"Authorization": f"Bearer {token}", **(headers or {})}
            try:
                self.requests_sent += 1
                response = await self.http.request(
                    method, self.url(path), json=json_body, params=params, headers=request_headers
                )
            except httpx.TimeoutException:
                error: GraphError = Unavailable(f"Graph did not answer {method} {path} in time",
                                                hint="m365pbx retries with backoff.")
            except httpx.TransportError as exc:
                error = Unavailable(f"cannot reach Graph: {type(exc).__name__}",
                                    hint="Check the network path to Microsoft 365.")
            else:
                self._note_date(response)
                if response.is_success:
                    return response
                error = _error_from(response)
                if isinstance(error, Throttled):
                    self.throttled += 1
                if isinstance(error, InvalidToken) and not reauthenticated:
                    # MSAL's cache lives on the wall clock; drop the token and sign in once.
                    reauthenticated = True
                    await self.tokens.invalidate()
                    attempt -= 1
                    continue
            if not error.retryable or attempt >= self.retry.attempts:
                raise error
            wait = getattr(error, "retry_after", None)
            if wait is None:
                wait = self.retry.backoff(attempt, self._rng)
            elif wait > self.retry.max_retry_after:
                raise error
            log.info("graph retry", extra={"path": path, "attempt": attempt, "wait": wait,
                                           "status": error.status})
            await self.clock.sleep(wait)

    async def get_json(self, path: str, *, params: dict[str, str] | None = None,
                       headers: dict[str, str] | None = None) -> dict[str, Any]:
        """GET a JSON object."""
        response = await self.request("GET", path, params=params, headers=headers)
        body = response.json()
        if not isinstance(body, dict):
            raise GraphError(f"Graph answered {path} with {type(body).__name__}, not an object")
        return body

    async def post_json(self, path: str, body: Any) -> dict[str, Any] | None:
        """POST JSON; return the JSON answer, or None for an empty one."""
        response = await self.request("POST", path, json_body=body)
        if not response.content:
            return None
        answer = response.json()
        return answer if isinstance(answer, dict) else None

    async def pages(self, path: str, *, params: dict[str, str] | None = None,
                    headers: dict[str, str] | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every page of a collection, following `@odata.nextLink` verbatim."""
        page = await self.get_json(path, params=params, headers=headers)
        yield page
        while isinstance(page.get("@odata.nextLink"), str):
            page = await self.get_json(str(page["@odata.nextLink"]), headers=headers)
            yield page
