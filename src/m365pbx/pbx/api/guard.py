"""Authentication and error answers for the API's routes, scoped to the API's router.

Every route checks its key before anything else (a request without a valid key learns
nothing, not even whether its body was well-formed), and every error comes back as
`{"error": {"code", "message"}}`. This is done by a route class rather than app-wide
exception handlers, so the rest of the web app keeps its own error format.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

from m365pbx.pbx.api.body import BODY_LIMIT_FIELD, DEFAULT_BODY_BYTES, BodyTooLarge, capped
from m365pbx.pbx.api.keys import ApiClientIdentity, ApiKeyChecker, ApiKeyError, Scope
from m365pbx.pbx.api.schemas import ErrorBody, ErrorDetail

SCOPE_FIELD = "x-required-scope"
"""The OpenAPI extension naming the scope an operation needs."""

_CHALLENGE = 'Bearer realm="m365pbx"'
_MAX_DETAILS = 5


class ApiError(Exception):
    """An answer other than success: HTTP status, stable code, and a sentence."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_response(error: ApiError) -> JSONResponse:
    """Return the JSON answer for an ApiError."""
    body = ErrorBody(error=ErrorDetail(code=error.code, message=error.message))
    return JSONResponse(body.model_dump(), status_code=error.status, headers=error.headers)


def requires(scope: Scope) -> dict[str, Any]:
    """Return the `openapi_extra` that makes a route demand `scope` (and documents it)."""
    return {SCOPE_FIELD: scope.value}


def bearer_key(headers: Headers) -> str | None:
    """Return the key of an `Authorization: Bearer <key>` header, or None."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.casefold() != "bearer" or not value.strip():
        return None
    return value.strip()


async def authenticate(keys: ApiKeyChecker, key: str | None, scope: Scope) -> ApiClientIdentity:
    """Return the client owning `key` if it has `scope`; raise ApiError (401/403) else."""
    if key is None:
        raise ApiError(
            401,
            "missing-api-key",
            "this request needs an API key: send 'Authorization: Bearer <key>'",
            {"WWW-Authenticate": _CHALLENGE},
        )
    try:
        return await keys.check(key, scope)
    except ApiKeyError as exc:
        headers = {"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'}
        if exc.status == 403:
            headers = {"WWW-Authenticate": f'{_CHALLENGE}, error="insufficient_scope"'}
        raise ApiError(exc.status, exc.code, str(exc), headers) from None


def describe_validation(errors: Sequence[Any]) -> ApiError:
    """Return the 400 (not JSON) or 422 (JSON of the wrong shape) for a validation failure."""
    if any(error.get("type") == "json_invalid" for error in errors):
        return ApiError(400, "invalid-json", "the request body is not valid JSON")
    parts = []
    for error in errors[:_MAX_DETAILS]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = len(errors) - _MAX_DETAILS
    if more > 0:
        parts.append(f"and {more} more problem{'s' if more > 1 else ''}")
    return ApiError(422, "invalid-body", "; ".join(parts) + "; nothing was changed")


def guarded_route_class(keys: ApiKeyChecker) -> type[APIRoute]:
    """Return a route class that authenticates first and answers errors in the API's format."""

    class GuardedRoute(APIRoute):
        """A route of the presence API."""

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            """Wrap FastAPI's handler with the key check and the error format."""
            handler = super().get_route_handler()
            extra = self.openapi_extra or {}
            scope_name = extra.get(SCOPE_FIELD)
            if scope_name is None:
                raise ValueError(f"route {self.path} does not say which scope it requires")
            scope = Scope(scope_name)
            limit = int(extra.get(BODY_LIMIT_FIELD, DEFAULT_BODY_BYTES))

            async def guarded(request: Request) -> Response:
                try:
                    client = await authenticate(keys, bearer_key(request.headers), scope)
                    request.state.api_client = client
                    return await handler(await capped(request, limit))
                except ApiError as exc:
                    return error_response(exc)
                except BodyTooLarge as exc:
                    return error_response(ApiError(413, "body-too-large", str(exc),
                                                   {"Connection": "close"}))
                except RequestValidationError as exc:
                    return error_response(describe_validation(exc.errors()))
                except HTTPException as exc:
                    # FastAPI's answer to a body json cannot decode (not UTF-8, nested too
                    # deeply for the parser): the same 400 as for any body that is not JSON.
                    if exc.status_code != 400:
                        raise
                    return error_response(ApiError(
                        400, "invalid-json", "the request body is not JSON m365pbx can read "
                        "(it must be UTF-8 and nested at most a few hundred levels)"))

            return guarded

    return GuardedRoute


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body is not JSON"},
    401: {"model": ErrorBody, "description": "No API key, or an invalid or revoked one"},
    403: {"model": ErrorBody, "description": "The key lacks the scope this route needs"},
    413: {"model": ErrorBody, "description": "The body is larger than the route accepts"},
    422: {"model": ErrorBody, "description": "The body or a parameter has the wrong shape"},
}
"""The error answers every route documents."""
