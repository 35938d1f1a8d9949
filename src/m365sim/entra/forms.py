"""Reading the token endpoint's form bodies and client credentials the way Entra does."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote_plus

from fastapi import Request

from m365sim.errors import AadError

FORM_TYPE = "application/x-www-form-urlencoded"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_BODY = 1 << 20


class Form:
    """The parameters of a form-encoded request, each given at most once."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, name: str) -> str | None:
        """A parameter, or None when absent or empty (Entra treats both alike)."""
        value = self.values.get(name)
        return value if value else None

    def require(self, name: str) -> str:
        """A parameter that must be present: AADSTS900144 otherwise."""
        value = self.get(name)
        if value is None:
            raise AadError("invalid_request", 900144, name)
        return value


async def read_form(request: Request) -> Form:
    """The request's form parameters.

    Entra reads a body only when it is form-encoded; any other content type looks like a
    request without parameters, so the answer names the first missing one (AADSTS900144),
    as Entra answers a JSON body.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != FORM_TYPE:
        return Form({})
    body = await request.body()
    if len(body) > MAX_BODY:
        raise AadError("invalid_request", 9002313, "The request body is too large.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise AadError("invalid_request", 9002313,
                       "The request body is not valid UTF-8 form data.") from None
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            raise AadError("invalid_request", 9002313,
                           f"The parameter '{name}' is given more than once.")
        values[name] = value
    return Form(values)


@dataclass(frozen=True)
class ClientCredential:
    """How a client proved who it is: nothing, a secret, or a signed assertion."""

    client_id: str | None
    secret: str | None = None
    assertion: str | None = None
    assertion_type: str | None = None

    @property
    def present(self) -> bool:
        """Whether any credential came with the request."""
        return self.secret is not None or self.assertion is not None


def read_client_credential(form: Form, authorization: str | None) -> ClientCredential:
    """The client id and credential from the body or HTTP Basic (RFC 6749 2.3.1)."""
    client_id = form.get("client_id")
    secret = form.get("client_secret")
    if authorization and authorization[:6].lower() == "basic ":
        basic_id, basic_secret = _basic(authorization[6:])
        if secret is not None or (client_id is not None and client_id != basic_id):
            raise AadError("invalid_request", 9002313,
                           "The client credential is given in the body and in the header.")
        client_id, secret = basic_id, basic_secret
    assertion = form.get("client_assertion")
    assertion_type = form.get("client_assertion_type")
    if secret is not None and assertion is not None:
        raise AadError("invalid_request", 9002313,
                       "Give either 'client_secret' or 'client_assertion', not both.")
    if assertion is not None and assertion_type != JWT_BEARER:
        raise AadError("invalid_request", 90100, "client_assertion_type")
    return ClientCredential(client_id, secret, assertion, assertion_type)


def _basic(encoded: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AadError("invalid_client", 9002313,
                       "The Authorization header is not valid Basic credentials.",
                       status=401) from None
    user, colon, password = decoded.partition(":")
    if not colon:
        raise AadError("invalid_client", 9002313,
                       "The Authorization header is not valid Basic credentials.", status=401)
    # RFC 6749 2.3.1: both halves are form-encoded before they are joined.
    return unquote_plus(user), unquote_plus(password)
