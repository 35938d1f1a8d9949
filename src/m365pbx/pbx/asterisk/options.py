"""Everything an AsteriskConnection can be told, with defaults (times in seconds)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from m365pbx.pbx.asterisk.client import AmiOptions

__all__ = ["AsteriskOptions", "tls_context"]


@dataclass(frozen=True, slots=True)
class AsteriskOptions:
    """Settings of one Asterisk connection; templates take {extension} and {key}."""

    ami: AmiOptions
    extension_field: str = "extension"
    line_device: str = "PJSIP/{extension}"
    custom_device: str = "Custom:{extension}-teams"
    presence_provider: str = "CustomPresence:{extension}"
    dnd_family: str = "DND"
    dnd_poll_interval: float = 15.0
    event_probe_timeout: float = 5.0
    event_queue_size: int = 10_000
    list_concurrency: int = 32
    # Devices whose change means "read AstDB DND now" (FreePBX sets Custom:DND<ext>).
    dnd_devices: str = "Custom:DND{extension}"


def tls_context(ca_file: Path | None, verify: bool = True) -> ssl.SSLContext:
    """A client TLS context for the AMI (the system's CAs, or `ca_file`'s)."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
