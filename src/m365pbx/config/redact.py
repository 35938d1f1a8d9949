"""Plain, printable data from Settings with every secret replaced by ********."""

from __future__ import annotations

import re
from datetime import timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from m365pbx.config.durations import format_duration
from m365pbx.config.secrets import MASK

if TYPE_CHECKING:
    from m365pbx.config.models import Settings

_URL_PASSWORD = re.compile(r"(?<=://)([^/@:\s]*):[^/@\s]*@")


def redact_settings(settings: Settings) -> dict[str, Any]:
    """Return the settings as YAML/JSON-ready data with secrets masked."""
    data = _plain(settings.model_dump(mode="python"))
    assert isinstance(data, dict)
    return data


def mask_url_password(url: str) -> str:
    """Hide the password of a URL such as postgresql+asyncpg://user:password@host/db."""
    return _URL_PASSWORD.sub(lambda match: f"{match.group(1)}:{MASK}@", url)


def _plain(value: Any, key: str = "") -> Any:
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, dict):
        return {str(k): _plain(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item, key) for item in value]
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, str) and (key == "url" or key.endswith("_url")):
        return mask_url_password(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)  # paths, URLs
