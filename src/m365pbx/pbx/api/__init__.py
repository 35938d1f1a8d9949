"""The built-in presence API: REST and WebSocket for switchboards, inbound events from PBXs.

`api_router(view, connections, keys)` serves `/api/v1`; `ApiConnection` is the PBX
connection behind it; `PresenceView` is what the sync layer provides; `ApiKeyChecker`
checks the clients' keys. See docs/presence-api.md for the wire format.
"""

from __future__ import annotations

from m365pbx.pbx.api.connection import (
    ApiConnection,
    ApiRelay,
    ConnectionUnavailable,
    ShownPresence,
)
from m365pbx.pbx.api.keys import (
    ApiClientIdentity,
    ApiKeyChecker,
    ApiKeyError,
    InsufficientScope,
    InvalidApiKey,
    MemoryApiKeyChecker,
    Scope,
    generate_api_key,
)
from m365pbx.pbx.api.redact import KeyRedactingFilter, install_key_redaction
from m365pbx.pbx.api.routes import api_router
from m365pbx.pbx.api.view import (
    MemoryPresenceView,
    PersonPresence,
    PresenceView,
    TeamsSession,
    TeamsSide,
)

__all__ = [
    "ApiClientIdentity",
    "ApiConnection",
    "ApiKeyChecker",
    "ApiKeyError",
    "ApiRelay",
    "ConnectionUnavailable",
    "InsufficientScope",
    "InvalidApiKey",
    "KeyRedactingFilter",
    "MemoryApiKeyChecker",
    "MemoryPresenceView",
    "PersonPresence",
    "PresenceView",
    "Scope",
    "ShownPresence",
    "TeamsSession",
    "TeamsSide",
    "api_router",
    "generate_api_key",
    "install_key_redaction",
]
