"""Log output of the service: one handler on the stdlib root logger formats every line —
m365pbx's own and uvicorn's, Alembic's, MSAL's, httpx's — as readable text or as one JSON
event per line (`logging.format`), with secrets masked in both.

structlog's ProcessorFormatter does the formatting, so third-party loggers, which know
nothing of structlog, get the same fields as ours: timestamp, level, logger, event, the
`extra=` fields, and the exception.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

import structlog
from pydantic import BaseModel, SecretStr
from structlog.stdlib import ProcessorFormatter
from structlog.typing import EventDict, Processor, WrappedLogger

from m365pbx.config.redact import mask_url_password
from m365pbx.config.secrets import MASK, is_secret_key

_HANDLER_NAME = "m365pbx"

# Tokens and secrets as they appear in messages: JSON Web Tokens, bearer headers, form or
# query fields and JSON members of the OAuth 2.0 requests MSAL and Graph make.
_MASKED_FIELDS = (r"client_secret|client_assertion|assertion|password|refresh_token|"
                 r"access_token|id_token|device_code|clientState|client_state|secret")
# Each pattern after the (casefolded) text it needs to match: a cheap test first.
_PATTERNS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("eyj", re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), MASK),
    ("bearer", re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\g<1>{MASK}"),
    ("=", re.compile(rf"(?i)\b({_MASKED_FIELDS})=[^&\s\"',;]+"), rf"\g<1>={MASK}"),
    # The presence API's WebSocket takes its key as ?key= (docs/presence-api.md).
    ("key=", re.compile(r"(?i)([?&](?:api_)?key=)[^&\s\"']+"), rf"\g<1>{MASK}"),
    (":", re.compile(rf"(?i)(['\"]({_MASKED_FIELDS})['\"]\s*:\s*['\"])[^'\"]*"),
     rf"\g<1>{MASK}"),
)
# Fields the formatter itself adds: never secret.
_OWN_FIELDS = frozenset({"level", "logger", "timestamp"})
_KEEP_SHORT = 4  # shorter "secrets" (test values like "x") would mask ordinary words


@functools.lru_cache(maxsize=1024)
def _secret_key(key: str) -> bool:
    return is_secret_key(key)


class SecretMasker:
    """Replaces secrets in log events: known values, secret-named fields, token shapes."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        values = {value for value in known if len(value) >= _KEEP_SHORT}
        # Longest first, so that a secret containing another is masked whole.
        self.known = sorted(values, key=len, reverse=True)

    def add(self, known: Iterable[str]) -> None:
        """Mask these values too from now on (a configuration applied while running)."""
        values = set(self.known) | {value for value in known if len(value) >= _KEEP_SHORT}
        self.known = sorted(values, key=len, reverse=True)

    def mask_text(self, text: str) -> str:
        """The text with every secret it contains replaced by ********."""
        for value in self.known:
            if value in text:
                text = text.replace(value, MASK)
        folded = text.casefold()
        for needle, pattern, replacement in _PATTERNS:
            if needle in folded:
                text = pattern.sub(replacement, text)
        return mask_url_password(text) if "://" in text else text

    def mask(self, value: Any, key: str = "") -> Any:
        """A log field with secrets masked (strings, and strings inside lists and dicts)."""
        if key and _secret_key(key) and value not in (None, ""):
            return MASK
        if isinstance(value, str):
            return self.mask_text(value)
        if isinstance(value, SecretStr):
            return MASK
        if isinstance(value, Mapping):
            return {k: self.mask(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.mask(item) for item in value]
        return value

    def __call__(self, _logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
        """structlog processor: mask every field of the event."""
        for key, value in list(event.items()):
            if key.startswith("_") or key in _OWN_FIELDS:
                continue
            event[key] = self.mask(value, "" if key in ("event", "exception") else key)
        return event


def settings_secrets(settings: BaseModel) -> list[str]:
    """Every secret value in the settings (and the database URL's password), to mask."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(settings)
    url = getattr(getattr(settings, "database", None), "url", "")
    if isinstance(url, str) and (match := re.search(r"://[^/@:\s]*:([^/@\s]*)@", url)):
        found.append(match.group(1))
    return found


def render_text(_logger: WrappedLogger, _method: str, event: EventDict) -> str:
    """`2026-12-06T03:19:33Z WARNING m365pbx.sync.hub: write failed person=anna`."""
    when = str(event.pop("timestamp", ""))
    level = str(event.pop("level", "")).upper()
    name = str(event.pop("logger", ""))
    message = str(event.pop("event", ""))
    exception = event.pop("exception", None)
    fields = " ".join(f"{key}={value}" for key, value in event.items())
    line = f"{when} {level} {name}: {message}" + (f" {fields}" if fields else "")
    return f"{line}\n{exception}" if exception else line


# Attributes other formatters leave on a record, and uvicorn's coloured copy of its message.
_NOT_FIELDS = ("_record", "_from_structlog", "positional_args", "message", "asctime",
               "color_message", "taskName")


def _drop_meta(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    for key in _NOT_FIELDS:
        event.pop(key, None)
    return event


_MASKER: SecretMasker | None = None


def mask_more_secrets(secrets: Iterable[str]) -> None:
    """Mask these values in the log lines from now on, too (new secrets applied at run time)."""
    if _MASKER is not None:
        _MASKER.add(secrets)


def configure_logging(level: str = "INFO", log_format: str = "console", *,
                      secrets: Iterable[str] = (),
                      stream: TextIO | None = None) -> logging.Handler:
    """Send every logger's lines through one root handler in `log_format` ('console', 'json').

    Calling it again replaces the handler it installed before; returns the handler.
    """
    global _MASKER
    masker = _MASKER = SecretMasker(secrets)
    renderer: Processor = (structlog.processors.JSONRenderer(default=str)
                           if log_format == "json" else render_text)
    shared: list[Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[_drop_meta, structlog.processors.format_exc_info, masker, renderer],
    )
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aiosqlite logs every statement at DEBUG: m365pbx's DEBUG is for m365pbx.
    logging.getLogger("aiosqlite").setLevel(max(root.level, logging.INFO))
    # httpx logs every request at INFO: thousands of lines a minute with 50,000 people. Our own
    # Graph client logs what matters (failures, throttling); request lines only at DEBUG.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(
            logging.DEBUG if root.level <= logging.DEBUG else max(root.level, logging.WARNING))
    # Third-party loggers that set up handlers of their own would bypass the format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "alembic", "msal"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.PositionalArgumentsFormatter(),
                    ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return handler
