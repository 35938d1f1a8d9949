"""Every answer under /api/ in the API's one error shape, even where no API route ran.

The API's routes answer their own errors as `{"error": {"code", "message"}}`
(pbx/api/guard.py), and cap their bodies (pbx/api/body.py). What happens before a route
runs (no such path, a method the path lacks) or when one fails unexpectedly went out in
FastAPI's `{"detail": ...}` or as plain text (issue 18 §7). Paths outside /api/ (the
Graph webhook, health, metrics) keep Starlette's answers.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import PlainTextResponse, Response
from starlette.exceptions import HTTPException

from m365pbx.pbx.api.guard import ApiError, error_response

API_PREFIX = "/api/"

_CODES = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}
_MESSAGES = {404: "there is no such route in the API (see /openapi.json)",
             405: "the route does not take this method (see /openapi.json)",
             413: "the body is larger than the route accepts; nothing was changed"}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not request.url.path.startswith(API_PREFIX):
        return await http_exception_handler(request, exc)
    status = exc.status_code
    message = _MESSAGES.get(status) or (exc.detail if isinstance(exc.detail, str)
                                        else "the request was refused")
    return error_response(ApiError(status, _CODES.get(status, f"http-{status}"), message,
                                   dict(exc.headers or {})))


async def _server_error(request: Request, exc: Exception) -> Response:
    # Starlette logs the traceback itself (it re-raises after this answer).
    if not request.url.path.startswith(API_PREFIX):
        return PlainTextResponse("Internal Server Error", status_code=500)
    return error_response(ApiError(500, "internal-error",
                                   "m365pbx failed to answer this request; its log says why"))


def install_api_errors(app: FastAPI) -> None:
    """Answer every error under /api/ in the API's error shape."""
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _server_error)
