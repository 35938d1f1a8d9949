"""Control routes for faults, limits and the request log."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from m365sim.control.common import json_object
from m365sim.errors import GraphError
from m365sim.faults import BUCKETS, FaultRule

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

_RULE_KEYS = {"status", "path_prefix", "method", "count", "rate", "retry_after_s"}


def rule_from(body: dict[str, Any]) -> FaultRule:
    """A fault rule from a control body; Graph's 400 naming the bad field."""
    unknown = set(body) - _RULE_KEYS
    if unknown:
        names = ", ".join(sorted(unknown))
        raise GraphError(400, "BadRequest", f"Unknown fault field(s): {names}.")
    status = body.get("status")
    if not isinstance(status, int) or isinstance(status, bool):
        raise GraphError(400, "BadRequest", "'status' must be 429, 500, 503 or 504.")
    path_prefix = body.get("path_prefix", "/v1.0/")
    method = body.get("method")
    count, rate, retry_after = body.get("count"), body.get("rate"), body.get("retry_after_s")
    if not isinstance(path_prefix, str) or not path_prefix.startswith("/"):
        raise GraphError(400, "BadRequest", "'path_prefix' must be a path starting with '/'.")
    if method is not None and not isinstance(method, str):
        raise GraphError(400, "BadRequest", "'method' must be a string.")
    for name, value in (("count", count), ("rate", rate), ("retry_after_s", retry_after)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise GraphError(400, "BadRequest", f"'{name}' must be a number.")
    if count is not None and int(count) != count:
        raise GraphError(400, "BadRequest", "'count' must be a whole number.")
    return FaultRule(status=status, path_prefix=path_prefix,
                     method=method.upper() if method else None,
                     count=int(count) if count is not None else None,
                     rate=float(rate) if rate is not None else None,
                     retry_after_s=float(retry_after) if retry_after is not None else None)


def register_fault_routes(app: FastAPI, sim: Simulator) -> None:
    """Add `/_sim/faults`, `/_sim/limits` and `/_sim/requests`."""
    faults = sim.faults

    @app.get("/_sim/faults")
    async def list_faults() -> Response:
        return JSONResponse({"faults": [asdict(rule) for rule in faults.rules]})

    @app.post("/_sim/faults")
    async def add_fault(request: Request) -> Response:
        rule = rule_from(await json_object(request))
        try:
            faults.add_fault(rule)
        except ValueError as exc:
            raise GraphError(400, "BadRequest", str(exc)) from None
        return JSONResponse(asdict(rule), status_code=201)

    @app.delete("/_sim/faults")
    async def clear_faults() -> Response:
        faults.clear_faults()
        return Response(status_code=204)

    @app.delete("/_sim/faults/{rule_id}")
    async def remove_fault(rule_id: str) -> Response:
        before = len(faults.rules)
        faults.rules[:] = [rule for rule in faults.rules if rule.id != rule_id]
        if len(faults.rules) == before:
            raise GraphError(404, "ResourceNotFound", f"Fault '{rule_id}' does not exist.")
        return Response(status_code=204)

    @app.get("/_sim/limits")
    async def limits() -> Response:
        return JSONResponse({"buckets": list(BUCKETS), "limits": {
            bucket: asdict(limit) for bucket, limit in faults.limits.items()}})

    @app.put("/_sim/limits")
    async def set_limits(request: Request) -> Response:
        body = await json_object(request)
        try:
            for bucket, spec in body.items():
                if spec is None:
                    faults.remove_limit(str(bucket))
                else:
                    faults.load_limits({bucket: spec})
        except ValueError as exc:
            raise GraphError(400, "BadRequest", str(exc)) from None
        return await limits()

    @app.get("/_sim/requests")
    async def requests(request: Request) -> Response:
        raw = request.query_params.get("limit")
        try:
            limit = int(raw) if raw is not None else None
        except ValueError:
            raise GraphError(400, "BadRequest", "'limit' must be a whole number.") from None
        return JSONResponse({"requests": faults.requests(limit)})

    @app.delete("/_sim/requests")
    async def clear_requests() -> Response:
        faults.log.clear()
        return Response(status_code=204)
