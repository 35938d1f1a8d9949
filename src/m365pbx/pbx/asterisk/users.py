"""Reading users from Asterisk: caller-id text as PJSIPShowEndpoint reports it."""

from __future__ import annotations

import re

__all__ = ["parse_callerid"]

_CALLERID = re.compile(r'^\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^<]*?))\s*'
                       r"(?:<(?P<number>[^>]*)>)?\s*$")


def parse_callerid(text: str) -> tuple[str, str]:
    """Name and number from `"Anna Schmidt" <2001>` (either may be empty)."""
    match = _CALLERID.match(text or "")
    if match is None:
        return text.strip(), ""
    quoted = match.group("quoted")
    name = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else match.group("bare") or ""
    return name.strip(), (match.group("number") or "").strip()
