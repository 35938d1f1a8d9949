"""Request bodies of the subscription endpoints, checked the way Graph checks them.

Wordings marked "observed" come from Graph answers quoted in public issue threads;
the others are chosen (docs/simulator/subscriptions.md lists them).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request

from m365sim.errors import GraphError
from m365sim.subscriptions.model import parse_instant

# Observed (microsoftgraph/microsoft-graph-docs-contrib#7717 and SDK issues).
UNPROCESSABLE = ("Could not process subscription creation payload. Are all property names "
                 "spelled and camelCased properly?")
TLS_VERSIONS = frozenset({"v1_0", "v1_1", "v1_2", "v1_3"})
MAX_CLIENT_STATE = 128
MAX_CERTIFICATE_ID = 128

_STRINGS = ("changeType", "notificationUrl", "lifecycleNotificationUrl", "resource",
            "expirationDateTime", "clientState", "latestSupportedTlsVersion",
            "encryptionCertificate", "encryptionCertificateId", "notificationUrlAppId",
            "notificationQueryOptions")
_READ_ONLY = ("id", "applicationId", "creatorId", "notificationContentType")
_KNOWN = frozenset(_STRINGS) | {"includeResourceData"} | frozenset(_READ_ONLY)
_REQUIRED = ("changeType", "notificationUrl", "resource", "expirationDateTime")
_UPDATABLE = frozenset({"expirationDateTime", "notificationUrl", "encryptionCertificate",
                        "encryptionCertificateId"})


async def read_json(request: Request) -> Any:
    """The JSON body, or Graph's 415/400 for a wrong content type or malformed JSON."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json":
        # Chosen: Graph's exact answer to a non-JSON body is not documented.
        raise GraphError(415, "UnsupportedMediaType",
                         f"The content type '{content_type or '(none)'}' is not supported; "
                         "send application/json.")
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload. Please "
                         "ensure Content-Type header is set and payload is of valid JSON "
                         "format.") from None


def _check_properties(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise GraphError(400, "InvalidRequest", UNPROCESSABLE)
    for key, value in body.items():
        if key.startswith("@odata.") or key in _READ_ONLY:
            continue
        if key not in _KNOWN:
            # OData's wording for a property the type does not define.
            raise GraphError(400, "BadRequest", f"The property '{key}' does not exist on type "
                             "'microsoft.graph.subscription'. Make sure to only use property "
                             "names that are defined by the type.")
        if value is not None and key in _STRINGS and not isinstance(value, str):
            raise GraphError(400, "InvalidRequest", UNPROCESSABLE)
        if key == "includeResourceData" and value is not None and not isinstance(value, bool):
            raise GraphError(400, "InvalidRequest", UNPROCESSABLE)
    return body


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, allow_http_loopback: bool) -> str:
    """A notification URL Graph accepts: absolute HTTPS (http only on loopback if allowed)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        host = ""
        parts = urlsplit("")
    if not host or parts.scheme.lower() not in ("http", "https") or " " in url:
        raise GraphError(400, "InvalidRequest", f"Invalid notification url='{url}'.")
    if parts.scheme.lower() == "http" and not (allow_http_loopback and _is_loopback(host)):
        # Observed (microsoftgraph/microsoft-graph-docs-contrib#7821).
        raise GraphError(400, "InvalidRequest", "NotificationUrl scheme='http' is not supported.")
    return url


def parse_expiration(value: str) -> datetime:
    """expirationDateTime as an aware UTC datetime, or Graph's 400."""
    try:
        return parse_instant(value)
    except ValueError:
        raise GraphError(400, "InvalidRequest", UNPROCESSABLE) from None


@dataclass(frozen=True)
class CreateRequest:
    """A checked `POST /subscriptions` body."""

    change_type: str
    notification_url: str
    lifecycle_url: str | None
    resource: str
    expiration: datetime
    client_state: str | None
    tls_version: str
    include_resource_data: bool
    certificate_text: str | None
    certificate_id: str | None


def _certificate_fields(body: dict[str, Any]) -> tuple[str | None, str | None]:
    text = body.get("encryptionCertificate") or None
    certificate_id = body.get("encryptionCertificateId") or None
    if certificate_id is not None and len(certificate_id) > MAX_CERTIFICATE_ID:
        raise GraphError(400, "InvalidRequest",
                         f"encryptionCertificateId must be at most {MAX_CERTIFICATE_ID} "
                         "characters.")
    return text, certificate_id


def parse_create(body: Any, *, allow_http_loopback: bool) -> CreateRequest:
    """Check a create body; raise Graph's 400 for the first problem."""
    body = _check_properties(body)
    for name in _REQUIRED:
        if not body.get(name):
            # Observed for expirationDateTime; the same wording is used for the others.
            raise GraphError(400, "InvalidRequest",
                             f"{name} is a required property for subscription creation.")
    notification_url = check_url(body["notificationUrl"], allow_http_loopback=allow_http_loopback)
    lifecycle_url = body.get("lifecycleNotificationUrl") or None
    if lifecycle_url is not None:
        check_url(lifecycle_url, allow_http_loopback=allow_http_loopback)
    client_state = body.get("clientState")
    if client_state is not None and len(client_state) > MAX_CLIENT_STATE:
        raise GraphError(400, "InvalidRequest",
                         f"clientState must be at most {MAX_CLIENT_STATE} characters.")
    tls_version = body.get("latestSupportedTlsVersion") or "v1_2"
    if tls_version not in TLS_VERSIONS:
        raise GraphError(400, "InvalidRequest",
                         f"Invalid latestSupportedTlsVersion '{tls_version}'; use one of "
                         f"{', '.join(sorted(TLS_VERSIONS))}.")
    include = bool(body.get("includeResourceData"))
    text, certificate_id = _certificate_fields(body)
    if include and (text is None or certificate_id is None):
        raise GraphError(400, "InvalidRequest", "encryptionCertificate and "
                         "encryptionCertificateId are required when includeResourceData is "
                         "true.")
    return CreateRequest(
        change_type=body["changeType"],
        notification_url=notification_url,
        lifecycle_url=lifecycle_url,
        resource=body["resource"],
        expiration=parse_expiration(body["expirationDateTime"]),
        client_state=client_state,
        tls_version=tls_version,
        include_resource_data=include,
        certificate_text=text if include else None,
        certificate_id=certificate_id if include else None,
    )


@dataclass(frozen=True)
class UpdateRequest:
    """A checked `PATCH /subscriptions/{id}` body."""

    expiration: datetime | None
    notification_url: str | None
    certificate_text: str | None
    certificate_id: str | None


def parse_update(body: Any, *, allow_http_loopback: bool,
                 has_lifecycle_url: bool) -> UpdateRequest:
    """Check a PATCH body; raise Graph's 400 for the first problem."""
    body = _check_properties(body)
    if "lifecycleNotificationUrl" in body and not has_lifecycle_url:
        # graph.md 4.1 and change-notifications-lifecycle-events.md: it cannot be added
        # later; delete and re-create. Wording chosen.
        raise GraphError(400, "InvalidRequest", "lifecycleNotificationUrl cannot be added to an "
                         "existing subscription; delete it and create a new one.")
    fixed = sorted(k for k in body if k in _KNOWN and k not in _UPDATABLE
                   and k not in _READ_ONLY and not k.startswith("@odata."))
    if fixed:
        raise GraphError(400, "InvalidRequest",
                         f"Property '{fixed[0]}' of a subscription cannot be updated.")
    expiration = body.get("expirationDateTime")
    url = body.get("notificationUrl")
    text, certificate_id = _certificate_fields(body)
    if not expiration and not url and text is None and certificate_id is None:
        # Observed (microsoftgraph/msgraph-sdk-java#2323).
        raise GraphError(400, "InvalidRequest", "Subscription must contain either the "
                         "'expirationDateTime' or 'notificationUrl' property and its value.")
    return UpdateRequest(
        expiration=parse_expiration(expiration) if expiration else None,
        notification_url=check_url(url, allow_http_loopback=allow_http_loopback) if url else None,
        certificate_text=text,
        certificate_id=certificate_id,
    )
