"""Error answers in the shapes Entra ID and Graph use (graph.md 0 and 1.2).

Handlers raise GraphError or AadError; the app's exception handlers turn them into
responses. Nothing else may reach a client as an error: unexpected exceptions become
Graph's generalException body, never a Python traceback.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi.responses import JSONResponse

GRAPH_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;"
    "IEEE754Compatible=false;charset=utf-8"
)


class GraphError(Exception):
    """A Graph error: HTTP status, Graph `code`, message and optional extra headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        inner_code: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.inner_code = inner_code


def graph_error_body(
    code: str,
    message: str,
    *,
    now: datetime,
    request_id: str,
    client_request_id: str | None = None,
    inner_code: str | None = None,
) -> dict[str, Any]:
    """Graph's error envelope with its innerError (date, request ids)."""
    inner: dict[str, Any] = {
        "date": now.strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": request_id,
        "client-request-id": client_request_id or request_id,
    }
    if inner_code is not None:
        inner["code"] = inner_code
    return {"error": {"code": code, "message": message, "innerError": inner}}


def graph_error_response(
    error: GraphError, *, now: datetime, client_request_id: str | None = None
) -> JSONResponse:
    """The response for a GraphError, with Graph's request-id headers."""
    request_id = str(uuid.uuid4())
    body = graph_error_body(
        error.code,
        error.message,
        now=now,
        request_id=request_id,
        client_request_id=client_request_id,
        inner_code=error.inner_code,
    )
    headers = {
        "request-id": request_id,
        "client-request-id": client_request_id or request_id,
        **error.headers,
    }
    return JSONResponse(body, status_code=error.status, headers=headers, media_type=GRAPH_JSON)


# Descriptions in Entra's words (reference-error-codes.md); `{}` takes a detail.
AADSTS_TEXT: dict[int, str] = {
    50034: "The user account {} does not exist in the directory. To sign into this "
    "application, the account must be added to the directory.",
    50053: "Your account is locked because you've tried to sign in too many times with an "
    "incorrect user ID or password.",
    50057: "The user account is disabled.",
    50076: "Due to a configuration change made by your administrator, or because you moved "
    "to a new location, you must use multi-factor authentication to access '{}'.",
    50079: "Due to a configuration change made by your administrator, or because you moved "
    "to a new location, you must enroll in multi-factor authentication to access '{}'.",
    50126: "Error validating credentials due to invalid username or password.",
    53003: "Access has been blocked by Conditional Access policies. The access policy does "
    "not allow token issuance.",
    65001: "The user or administrator has not consented to use the application with ID "
    "'{}'. Send an interactive authorization request for this user and resource.",
    70011: "The provided value for the input parameter 'scope' is not valid. The scope {} is "
    "not valid.",
    70016: "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
    70019: "Verification code expired.",
    700016: "Application with identifier '{}' was not found in the directory. This can "
    "happen if the application has not been installed by the administrator of the tenant "
    "or consented to by any user in the tenant.",
    7000215: "Invalid client secret provided. Ensure the secret being sent in the request "
    "is the client secret value, not the client secret ID, for a secret added to app '{}'.",
    7000218: "The request body must contain the following parameter: 'client_assertion' "
    "or 'client_secret'.",
    7000222: "The provided client secret keys for app '{}' are expired. Visit the Azure "
    "portal to create new keys for your app.",
    700025: "Client is public so neither 'client_assertion' nor 'client_secret' should be "
    "presented.",
    # Two wire texts share this number (unknown certificate, bad signature): the caller
    # passes the whole sentence.
    700027: "{}",
    700082: "The refresh token has expired due to inactivity. {}",
    50173: "The provided grant has expired due to it being revoked, a fresh auth token is "
    "needed.",
    90002: "Tenant '{}' not found. Check to make sure you have the correct tenant ID and "
    "are signing into the correct cloud.",
    900144: "The request body must contain the following parameter: '{}'.",
    9001023: "The grant type isn't supported over the /common or /consumers endpoints. "
    "Please use the /organizations or tenant-specific endpoint.",
    # Added for the Entra part (texts from reference-error-codes.md or observed answers).
    50013: "Assertion is invalid. {}",
    50027: "JWT token is invalid or malformed. {}",
    50048: "Subject mismatches Issuer claim in the client assertion.",
    50049: "Unknown or invalid instance.",
    50050: "The request is malformed. {}",
    50059: "No tenant-identifying information found in either the request or implied by any "
    "provided credentials.",
    65004: "User declined to consent to access the app.",
    70000: "Provided grant is invalid or malformed.",
    70003: "The app requested an unsupported grant type '{}'.",
    70018: "Invalid verification code. The provided device_code was not recognized.",
    90100: "The parameter '{}' is empty or not valid.",
    700024: "Client assertion is not within its valid time range. {}",
    900561: "The endpoint only accepts POST, OPTIONS requests. Received a {} request.",
    1002012: "The provided value for scope {} is not valid. Client credential flows must have a "
    "scope value with /.default suffixed to the resource identifier (application ID URI).",
    9002313: "Invalid request. Request is malformed or invalid. {}",
    9002332: "Application '{}' is configured for use by Azure Active Directory users only. "
    "Please do not use the /consumers endpoint to serve this request.",
}


class AadError(Exception):
    """An Entra ID token-endpoint error: OAuth `error`, AADSTS number and HTTP status."""

    def __init__(
        self,
        error: str,
        code: int,
        detail: str = "",
        *,
        status: int = 400,
        suberror: str | None = None,
        claims: str | None = None,
    ) -> None:
        template = AADSTS_TEXT.get(code, "{}")
        self.description = f"AADSTS{code}: " + (template.format(detail) if "{}" in template
                                                 else template)
        super().__init__(self.description)
        self.error = error
        self.code = code
        self.status = status
        self.suberror = suberror
        self.claims = claims


def aad_error_response(error: AadError, *, now: datetime) -> JSONResponse:
    """Entra's token error body (error, error_description, error_codes, ids, error_uri)."""
    trace_id = str(uuid.uuid4())
    correlation_id = str(uuid.uuid4())
    timestamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    body: dict[str, Any] = {
        "error": error.error,
        "error_description": (
            f"{error.description} Trace ID: {trace_id} Correlation ID: {correlation_id} "
            f"Timestamp: {timestamp}"
        ),
        "error_codes": [error.code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={error.code}",
    }
    if error.suberror:
        body["suberror"] = error.suberror
    if error.claims:
        body["claims"] = error.claims
    headers = {"x-ms-request-id": trace_id, "x-ms-ests-server": "m365sim"}
    return JSONResponse(body, status_code=error.status, headers=headers)
