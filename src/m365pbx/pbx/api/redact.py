"""Keep API keys out of the server's logs.

Browsers cannot set headers on a WebSocket, so the stream also takes `?key=`; uvicorn
logs each WebSocket's path with its query string ('"WebSocket /api/v1/stream?key=..."
[accepted]' on `uvicorn.error`) and each request's on `uvicorn.access`. This filter masks
`key=` values and anything shaped like a key before a record is formatted, and the
searched text and looked-up numbers (`q=`, `number=`): who called whom stays out of the
logs too (docs/contacts.md).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

MASK = "***"
SERVER_LOGGERS = ("uvicorn.access", "uvicorn.error")
_KEY_PARAMETER = re.compile(r"(?i)(\bkey=)[^&\s\"']+")
_KEY_SHAPE = re.compile(r"m365pbx_[A-Za-z0-9_-]{20,}")
_PRIVATE_PARAMETER = re.compile(r"(?i)([?&](?:q|number)=)[^&\s\"']+")


def redact_keys(text: str) -> str:
    """Return `text` with `key=`, `q=` and `number=` values and key-shaped tokens masked."""
    text = _PRIVATE_PARAMETER.sub(rf"\g<1>{MASK}", text)
    return _KEY_SHAPE.sub(MASK, _KEY_PARAMETER.sub(rf"\g<1>{MASK}", text))


def _redact_value(value: Any) -> Any:
    return redact_keys(value) if isinstance(value, str) else value


class KeyRedactingFilter(logging.Filter):
    """Masks API keys in a record's message and arguments; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place and keep it."""
        if isinstance(record.msg, str):
            record.msg = redact_keys(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_value(value) for value in record.args)
        elif isinstance(record.args, dict):
            record.args = {name: _redact_value(value) for name, value in record.args.items()}
        return True


def install_key_redaction(names: Iterable[str] = SERVER_LOGGERS) -> None:
    """Add the filter to these loggers, once each."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(item, KeyRedactingFilter) for item in logger.filters):
            logger.addFilter(KeyRedactingFilter())
