"""Asterisk (FreePBX, Issabel) through its Manager Interface (AMI): a small asyncio AMI client
and the PbxConnection built on it. Knows nothing of the store, config models or web layer."""

from m365pbx.pbx.asterisk.client import (
    AmiAuthError,
    AmiClient,
    AmiConnectionError,
    AmiError,
    AmiOptions,
    AmiPermissionError,
)
from m365pbx.pbx.asterisk.connection import AsteriskConnection, UnaddressableUser
from m365pbx.pbx.asterisk.options import AsteriskOptions, tls_context
from m365pbx.pbx.asterisk.wire import AmiMessage, AmiParser, AmiProtocolError, encode_action

__all__ = [
    "AmiAuthError",
    "AmiClient",
    "AmiConnectionError",
    "AmiError",
    "AmiMessage",
    "AmiOptions",
    "AmiParser",
    "AmiPermissionError",
    "AmiProtocolError",
    "AsteriskConnection",
    "AsteriskOptions",
    "UnaddressableUser",
    "encode_action",
    "tls_context",
]
