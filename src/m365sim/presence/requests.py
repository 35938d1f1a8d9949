"""Reading Graph action bodies: JSON only, known parameters only, typed values.

Each failure is a 400 `BadRequest` whose message names the problem; nothing is changed
before the whole body has been checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any

from fastapi import Request

from m365sim.errors import GraphError

# Graph's answer to a body it cannot read as JSON (observed wording).
UNREADABLE_JSON = ("Unable to read JSON request payload. Please ensure Content-Type header is "
                   "set and payload is of valid JSON format.")

GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def bad_request(message: str) -> GraphError:
    """A 400 BadRequest error with `message`."""
    return GraphError(400, "BadRequest", message)


def is_guid(value: str) -> bool:
    """Whether `value` is a GUID in its usual 8-4-4-4-12 form."""
    return GUID.fullmatch(value) is not None


async def read_action_body(request: Request, action: str, parameters: Collection[str], *,
                           allow_empty: bool = False) -> dict[str, Any]:
    """The JSON object of an action request; unknown parameters are refused as OData does."""
    raw = await request.body()
    if not raw.strip():
        if allow_empty:
            return {}
        raise bad_request(f"Empty Payload. JSON content expected for the operation '{action}'.")
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise bad_request(UNREADABLE_JSON)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request(UNREADABLE_JSON) from None
    if not isinstance(data, dict):
        raise bad_request(UNREADABLE_JSON)
    for key in data:
        if key not in parameters and not key.startswith("@odata."):
            raise bad_request(f"The parameter '{key}' in the request payload is not a valid "
                              f"parameter for the operation '{action}'.")
    return data


def text_parameter(data: dict[str, Any], name: str, action: str, *,
                   required: bool) -> str | None:
    """A string parameter; a missing required one or a non-string value is a 400."""
    value = data.get(name)
    if value is None:
        if required:
            raise bad_request(f"The parameter '{name}' is required for the operation "
                              f"'{action}'.")
        return None
    if not isinstance(value, str):
        raise bad_request(f"Invalid value for the parameter '{name}' of the operation "
                          f"'{action}': a string is expected.")
    return value


def object_parameter(data: dict[str, Any], name: str, where: str) -> dict[str, Any] | None:
    """An object-valued property (None if absent or null); anything else is a 400."""
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request(f"Invalid value for '{where}.{name}': an object is expected.")
    return value
