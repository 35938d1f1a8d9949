"""`POST /v1.0/$batch`: JSON batching (graph.md 5; concepts/json-batching.md).

At most 20 requests; ids unique regardless of case; urls relative to the version;
`headers` with a Content-Type whenever a `body` is given; `dependsOn` orders requests
and a failed dependency fails its dependents with 424. Each inner request runs through
the same ASGI app in-process, so every part's routes, authentication and the
per-request throttling of `faults.py` apply to it (an inner 429 carries its own
Retry-After). Independent requests run concurrently; responses are listed in request
order (Graph allows any order; clients correlate by `id`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from m365sim.auth import authenticate
from m365sim.errors import GRAPH_JSON, GraphError, graph_error_body
from m365sim.faults import BATCH_HEADER

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

MAX_REQUESTS = 20
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_KEPT_HEADERS = {"content-type": "Content-Type", "retry-after": "Retry-After",
                 "location": "Location", "etag": "ETag", "odata-version": "OData-Version",
                 "cache-control": "Cache-Control"}
UNREADABLE_JSON = ("Unable to read JSON request payload. Please ensure Content-Type header "
                   "is set and payload is of valid JSON format.")


def bad_batch(message: str) -> GraphError:
    """The 400 for a malformed batch envelope (wording chosen, documented)."""
    return GraphError(400, "BadRequest", message)


@dataclass
class Step:
    """One request of a batch, checked."""

    id: str
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    depends_on: list[str] = field(default_factory=list)


def _step(raw: Any, index: int) -> Step:
    if not isinstance(raw, Mapping):
        raise bad_batch(f"Batch request at index {index} is not a JSON object.")
    step_id, method, url = raw.get("id"), raw.get("method"), raw.get("url")
    if not isinstance(step_id, str) or not step_id:
        raise bad_batch(f"Batch request at index {index} needs a string 'id'.")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise bad_batch(f"Batch request '{step_id}' has an invalid 'method'.")
    if not isinstance(url, str) or not url:
        raise bad_batch(f"Batch request '{step_id}' needs a 'url'.")
    if "://" in url or url.startswith("//"):
        raise bad_batch(f"Batch request '{step_id}' has an absolute url; give it relative to "
                        f"the version, e.g. '/users'.")
    headers = raw.get("headers") or {}
    if not isinstance(headers, Mapping) or not all(isinstance(v, str) for v in headers.values()):
        raise bad_batch(f"Batch request '{step_id}' has invalid 'headers'.")
    depends = raw.get("dependsOn") or []
    if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
        raise bad_batch(f"Batch request '{step_id}' has an invalid 'dependsOn'.")
    return Step(step_id, method.upper(), "/v1.0/" + url.lstrip("/"), dict(headers),
                _body(step_id, raw, headers), list(depends))


def _body(step_id: str, raw: Mapping[str, Any], headers: Mapping[str, str]) -> bytes | None:
    if "body" not in raw:
        return None
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    if content_type is None:
        # Graph's wording for a write request without Content-Type (json-batching.md rule).
        raise bad_batch(f"Write request id : {step_id} does not contain Content-Type header "
                        f"or body.")
    body = raw["body"]
    if "json" in content_type.lower():
        return json.dumps(body).encode()
    if isinstance(body, str):
        try:
            return base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_")
        except (binascii.Error, ValueError):
            raise bad_batch(f"Batch request '{step_id}' has a body that is not base64.") from None
    return json.dumps(body).encode()


def parse_batch(payload: Any) -> list[Step]:
    """Check a batch envelope and return its steps; GraphError 400 when it is malformed."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("requests"), list):
        raise bad_batch("Invalid batch payload format: a 'requests' array is required.")
    raw_steps = payload["requests"]
    if not raw_steps:
        raise bad_batch("Invalid batch payload format: 'requests' is empty.")
    if len(raw_steps) > MAX_REQUESTS:
        raise bad_batch(f"The batch contains {len(raw_steps)} requests; at most "
                        f"{MAX_REQUESTS} are allowed.")
    steps = [_step(raw, index) for index, raw in enumerate(raw_steps)]
    seen: dict[str, Step] = {}
    for step in steps:
        if step.id.casefold() in seen:
            raise bad_batch(f"Batch request id '{step.id}' is not unique (ids are compared "
                            f"without regard to case).")
        seen[step.id.casefold()] = step
    for step in steps:
        for dependency in step.depends_on:
            if dependency.casefold() not in seen:
                raise bad_batch(f"Batch request '{step.id}' depends on unknown id "
                                f"'{dependency}'.")
    _check_acyclic(steps, seen)
    return steps


def _check_acyclic(steps: list[Step], by_id: dict[str, Step]) -> None:
    state: dict[str, int] = {}

    def visit(step: Step) -> None:
        key = step.id.casefold()
        if state.get(key) == 2:
            return
        if state.get(key) == 1:
            raise bad_batch(f"Batch request '{step.id}' is part of a dependsOn cycle.")
        state[key] = 1
        for dependency in step.depends_on:
            visit(by_id[dependency.casefold()])
        state[key] = 2

    for step in steps:
        visit(step)


def _inner_body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    content_type = response.headers.get("content-type", "")
    if "json" in content_type:
        try:
            return response.json()
        except ValueError:
            return response.text
    if content_type.startswith("text/"):
        return response.text
    return base64.b64encode(response.content).decode("ascii")


async def run_batch(app: FastAPI, steps: list[Step], authorization: str | None,
                    now_body: Callable[[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    """Run the steps through `app`, honouring dependsOn; the batch's `responses`."""
    results: dict[str, dict[str, Any]] = {}
    tasks: dict[str, asyncio.Task[dict[str, Any]]] = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://m365sim.batch") as http:

        async def run(step: Step) -> dict[str, Any]:
            for dependency in step.depends_on:
                outcome = await tasks[dependency.casefold()]
                if outcome["status"] >= 400:
                    return {"id": step.id, "status": 424,
                            "headers": {"Content-Type": "application/json"},
                            "body": now_body("FailedDependency",
                                             f"The request depends on request "
                                             f"'{dependency}', which failed.")}
            headers = {**step.headers, BATCH_HEADER: "1"}
            if authorization:
                headers["Authorization"] = authorization
            response = await http.request(step.method, step.url, headers=headers,
                                          content=step.body)
            kept = {_KEPT_HEADERS[k]: v for k, v in response.headers.items()
                    if k in _KEPT_HEADERS}
            return {"id": step.id, "status": response.status_code, "headers": kept,
                    "body": _inner_body(response)}

        pending = list(steps)
        while pending:  # create tasks so that dependencies exist before dependents
            ready = [s for s in pending
                     if all(d.casefold() in tasks for d in s.depends_on)]
            for step in ready:
                tasks[step.id.casefold()] = asyncio.create_task(run(step))
                pending.remove(step)
        for step in steps:
            results[step.id] = await tasks[step.id.casefold()]
    return [results[step.id] for step in steps]


def register_batch_route(app: FastAPI, sim: Simulator) -> None:
    """Add `POST /v1.0/$batch`."""

    @app.post("/v1.0/$batch")
    async def batch(request: Request) -> Response:
        authenticate(request, tenants=sim.directory.tenants, now=sim.clock.now(),
                     decode=sim.issuer.decode)
        if "json" not in request.headers.get("content-type", "").lower():
            raise bad_batch(UNREADABLE_JSON)
        try:
            payload = json.loads(await request.body())
        except ValueError:
            raise bad_batch(UNREADABLE_JSON) from None
        steps = parse_batch(payload)

        def error_body(code: str, message: str) -> dict[str, Any]:
            return graph_error_body(code, message, now=sim.clock.now(),
                                    request_id=str(uuid.uuid4()))

        responses = await run_batch(request.app, steps, request.headers.get("authorization"),
                                    error_body)
        return JSONResponse({"responses": responses}, media_type=GRAPH_JSON)
