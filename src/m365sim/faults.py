"""Throttling and injected faults (429 with Retry-After, 500/503/504), per Graph's limits.

A pure ASGI middleware sees every request before the routes do. It

- classifies Graph requests into limit buckets and counts them per (tenant, app,
  bucket) on the simulator's clock: presence reads share Microsoft's documented
  1,500 requests / 30 s / app / tenant (graph.md 3.2, 5); other buckets have the limits a
  scenario or the control API sets (none by default). The window slides; refused
  requests do not count (simulator choices, docs/simulator/faults.md);
- answers injected faults (`/_sim/faults`) with Graph's error bodies;
- logs each request (method, path, status, app, time) for `GET /_sim/requests`.

Control routes under `/_sim/` are never throttled, failed or logged.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from m365sim.errors import GRAPH_JSON, graph_error_body

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

PRESENCE_READ = "presence-read"
BUCKETS = ("presence-read", "presence-write", "directory", "subscriptions", "calendar",
           "contacts", "other")
FAULT_STATUSES = frozenset({429, 500, 503, 504})
BATCH_HEADER = "x-m365sim-batch"

_PRESENCE_GET = re.compile(r"^(users/[^/]+|me)/presence$|^communications/presences(/[^/]+)?$")
_PRESENCE_WRITE = re.compile(r"^(users/[^/]+|me)/presence/[A-Za-z]+$")
_CALENDAR = re.compile(r"^(users/[^/]+|me)/(events|calendar|calendars|calendarView)(/|$)")
_CONTACTS = re.compile(r"^(users/[^/]+|me)/(contacts|contactFolders)(/|$)")


def bucket_of(method: str, path: str) -> str | None:
    """The limit bucket of a Graph request, or None for non-Graph paths and `$batch`."""
    version, _, rest = path.lstrip("/").partition("/")
    if version not in ("v1.0", "beta") or not rest or rest == "$batch":
        return None
    if (method == "GET" and _PRESENCE_GET.match(rest)) or (
            method == "POST" and rest == "communications/getPresencesByUserId"):
        return PRESENCE_READ
    if _PRESENCE_WRITE.match(rest):
        return "presence-write"
    if _CALENDAR.match(rest):
        return "calendar"
    if _CONTACTS.match(rest):
        return "contacts"
    if rest.startswith("subscriptions"):
        return "subscriptions"
    if rest.split("/")[0] in ("users", "groups", "me", "directoryObjects"):
        return "directory"
    return "other"


@dataclass(frozen=True)
class Limit:
    """At most `requests` per `window_s` seconds per tenant and app."""

    requests: int
    window_s: float


@dataclass
class FaultRule:
    """An injected failure for matching requests: the next `count` of them, or a share."""

    status: int
    path_prefix: str = "/v1.0/"
    method: str | None = None
    count: int | None = None
    rate: float | None = None
    retry_after_s: float | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        """Whether the rule applies to this request (ignoring count and rate)."""
        if self.method is not None and self.method.upper() != method:
            return False
        if path.rstrip("/").endswith("/$batch") and "$batch" not in self.path_prefix:
            return False  # the envelope is not hit unless named; its inner requests are
        return path.startswith(self.path_prefix)


@dataclass(frozen=True)
class RequestRecord:
    """One request as the control API reports it."""

    time: str
    method: str
    path: str
    query: str
    status: int
    tenant: str | None
    app: str | None
    bucket: str | None
    batch: bool
    outcome: str  # "ok", "throttled" or "fault"


class FaultInjector:
    """Decides, per request, whether Graph would throttle or fail it, and logs it."""

    def __init__(self, sim: Simulator, *, seed: int = 0) -> None:
        self.sim = sim
        self.limits: dict[str, Limit] = {PRESENCE_READ: Limit(1500, 30.0)}
        self.rules: list[FaultRule] = []
        self.log: deque[RequestRecord] = deque(maxlen=20_000)
        self._windows: dict[tuple[str, str, str], deque[float]] = {}
        self._random = random.Random(seed)  # noqa: S311 - simulation, not security
        self._callers: dict[str, tuple[str, str] | None] = {}

    def install(self, app: FastAPI) -> None:
        """Add the middleware that applies limits and injected faults."""
        app.add_middleware(FaultMiddleware, injector=self)

    # Limits --------------------------------------------------------------------------
    def set_limit(self, bucket: str, requests: int, window_s: float) -> None:
        """Limit a bucket per tenant and app (requests per window)."""
        if bucket not in BUCKETS:
            raise ValueError(f"unknown bucket {bucket!r}; known: {', '.join(BUCKETS)}")
        if requests < 1 or window_s <= 0:
            raise ValueError("a limit needs requests >= 1 and window_s > 0")
        self.limits[bucket] = Limit(int(requests), float(window_s))

    def remove_limit(self, bucket: str) -> None:
        """Lift a bucket's limit."""
        self.limits.pop(bucket, None)

    def load_limits(self, data: Mapping[str, Any] | None) -> None:
        """Apply a scenario's `limits: {bucket: {requests, window_s}}` mapping."""
        for bucket, spec in (data or {}).items():
            if not isinstance(spec, Mapping):
                raise ValueError(f"limits.{bucket}: give {{requests, window_s}}")
            try:
                self.set_limit(str(bucket), int(spec["requests"]), float(spec["window_s"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"limits.{bucket}: {exc}") from None

    def retry_after(self, key: tuple[str, str, str], limit: Limit) -> float | None:
        """Seconds to wait if this request is over the limit; else count it and None."""
        now = self.sim.clock.now().timestamp()
        window = self._windows.setdefault(key, deque())
        while window and window[0] <= now - limit.window_s:
            window.popleft()
        if len(window) >= limit.requests:
            return window[0] + limit.window_s - now
        window.append(now)
        return None

    # Faults --------------------------------------------------------------------------
    def add_fault(self, rule: FaultRule) -> FaultRule:
        """Start injecting a fault."""
        if rule.status not in FAULT_STATUSES:
            raise ValueError(f"status must be one of {sorted(FAULT_STATUSES)}")
        if rule.rate is not None and not 0.0 <= rule.rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if rule.count is not None and rule.count < 1:
            raise ValueError("count must be at least 1")
        self.rules.append(rule)
        return rule

    def clear_faults(self) -> None:
        """Stop injecting every fault."""
        self.rules.clear()

    def pick_fault(self, method: str, path: str) -> FaultRule | None:
        """The rule that fails this request, if any (consuming one of its `count`)."""
        for rule in list(self.rules):
            if not rule.matches(method, path):
                continue
            if rule.rate is not None and self._random.random() >= rule.rate:
                continue
            rule.hits += 1
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
            return rule
        return None

    # Log -----------------------------------------------------------------------------
    def requests(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The latest requests, oldest first."""
        records = list(self.log)
        if limit is not None:
            records = records[-limit:] if limit > 0 else []
        return [asdict(record) for record in records]

    def caller(self, authorization: str | None) -> tuple[str, str] | None:
        """(tenant id, app id) from a bearer token, or None if it cannot be read."""
        if not authorization:
            return None
        if authorization in self._callers:
            return self._callers[authorization]
        scheme, _, token = authorization.partition(" ")
        result: tuple[str, str] | None = None
        if scheme.lower() == "bearer" and token:
            try:
                claims = self.sim.issuer.decode(token)
                result = (str(claims.get("tid", "")), str(claims.get("appid", "")))
            except Exception:  # an unreadable token is refused later, by auth
                result = None
        if len(self._callers) > 4096:
            self._callers.clear()
        self._callers[authorization] = result
        return result

    def refusal(self, method: str, path: str, bucket: str | None,
                caller: tuple[str, str] | None,
                client_request_id: str | None = None) -> tuple[JSONResponse, str] | None:
        """The answer that stops this request (fault or throttling), if any."""
        rule = self.pick_fault(method, path)
        if rule is not None:
            return self._fault_response(rule, client_request_id), "fault"
        if bucket is None or caller is None:
            return None
        limit = self.limits.get(bucket)
        if limit is None:
            return None
        wait = self.retry_after((caller[0], caller[1], bucket), limit)
        if wait is None:
            return None
        return self._error(429, "TooManyRequests", "Please retry again later.",
                           retry_after=wait, client_request_id=client_request_id), "throttled"

    def _fault_response(self, rule: FaultRule, client_request_id: str | None) -> JSONResponse:
        ids = {"client_request_id": client_request_id}
        if rule.status == 429:
            return self._error(429, "TooManyRequests", "Please retry again later.",
                               retry_after=rule.retry_after_s or 1.0, **ids)
        if rule.status == 503:
            return self._error(503, "serviceNotAvailable",
                               "The service is temporarily unavailable. Retry the request "
                               "after a delay.", retry_after=rule.retry_after_s, **ids)
        if rule.status == 504:
            # Observed gateway-timeout body: code UnknownError, empty message
            # (microsoft-graph-docs-contrib#7867).
            return self._error(504, "UnknownError", "", retry_after=rule.retry_after_s, **ids)
        return self._error(500, "generalException", "General exception while processing.",
                           retry_after=rule.retry_after_s, **ids)

    def _error(self, status: int, code: str, message: str, *, retry_after: float | None,
               client_request_id: str | None = None) -> JSONResponse:
        now = self.sim.clock.now()
        request_id = str(uuid.uuid4())
        client_request_id = client_request_id or request_id
        body = graph_error_body(code, message, now=now, request_id=request_id,
                                client_request_id=client_request_id)
        if status == 429:
            # The throttling sample in concepts/throttling.md nests code/status "429".
            body["error"]["innerError"].update({"code": "429", "status": "429",
                                                "message": "Please retry after"})
        headers = {"request-id": request_id, "client-request-id": client_request_id,
                   "Date": format_datetime(now + timedelta(seconds=self.sim.settings.date_skew_s),
                                           usegmt=True)}
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return JSONResponse(body, status_code=status, headers=headers, media_type=GRAPH_JSON)

    def record(self, scope: Scope, status: int, bucket: str | None,
               caller: tuple[str, str] | None, outcome: str, batch: bool) -> None:
        """Append a request to the log."""
        self.log.append(RequestRecord(
            time=self.sim.clock.now().isoformat(), method=scope["method"], path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"), status=status,
            tenant=caller[0] if caller else None, app=caller[1] if caller else None,
            bucket=bucket, batch=batch, outcome=outcome))


class FaultMiddleware:
    """Pure ASGI middleware applying a FaultInjector to each HTTP request."""

    def __init__(self, app: ASGIApp, injector: FaultInjector) -> None:
        self.app = app
        self.injector = injector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse, or pass on and log, one request."""
        if scope["type"] != "http" or scope["path"].startswith("/_sim"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method, path = scope["method"], scope["path"]
        caller = self.injector.caller(headers.get("authorization"))
        bucket = bucket_of(method, path)
        batch = BATCH_HEADER in headers
        refused = self.injector.refusal(method, path, bucket, caller,
                                        headers.get("client-request-id"))
        if refused is not None:
            response, outcome = refused
            self.injector.record(scope, response.status_code, bucket, caller, outcome, batch)
            await response(scope, receive, send)
            return
        status = 500

        async def send_with_ids(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # Graph puts request-id / client-request-id on every answer (graph.md 0).
                out = MutableHeaders(scope=message)
                if "request-id" not in out:
                    request_id = str(uuid.uuid4())
                    out["request-id"] = request_id
                    out["client-request-id"] = headers.get("client-request-id") or request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_ids)
        finally:
            self.injector.record(scope, status, bucket, caller, "ok", batch)
