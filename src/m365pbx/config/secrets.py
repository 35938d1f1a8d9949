"""Secret values: inline, `{env: NAME}` or `{file: PATH}`, resolved at load time, never shown."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, SecretStr

MASK = "********"
"""What a secret looks like wherever it is shown."""

_SECRET_KEY_WORDS = ("secret", "password", "token", "key")
# Microsoft client secrets and most generated passwords: long, no spaces, several character
# classes. Values like these are hidden even in fields that are not secret (a pasted secret).
_TOKEN_LIKE = re.compile(r"^\S{16,}$")
_HEX_AND_DASHES = re.compile(r"^[0-9A-Fa-f-]+$")

_environ: ContextVar[Mapping[str, str] | None] = ContextVar("m365pbx_config_environ", default=None)


@contextmanager
def resolving_with(environ: Mapping[str, str]) -> Iterator[None]:
    """Resolve `{env: NAME}` references against `environ` inside this block."""
    token = _environ.set(environ)
    try:
        yield
    finally:
        _environ.reset(token)


def is_secret_key(key: object) -> bool:
    """Tell whether a key's name says its value is or may be a secret."""
    folded = str(key).casefold()
    return any(word in folded for word in _SECRET_KEY_WORDS)


def looks_like_secret(value: object) -> bool:
    """Tell whether a value could be a secret pasted in the wrong place (long random text)."""
    if not isinstance(value, str) or not _TOKEN_LIKE.match(value):
        return False
    if _HEX_AND_DASHES.match(value) or "://" in value or value.startswith(("/", "./", "~")):
        return False
    classes = (
        any(char.islower() for char in value),
        any(char.isupper() for char in value),
        any(char.isdigit() for char in value),
        any(not char.isalnum() for char in value),
    )
    return sum(classes) >= 3


def resolve_reference(value: object) -> object:
    """Replace `{env: NAME}` or `{file: PATH}` with the text it points to; pass other values."""
    if not isinstance(value, Mapping):
        return value
    if set(value) == {"env"} and isinstance(value["env"], str) and value["env"]:
        return _from_environment(value["env"])
    if set(value) == {"file"} and isinstance(value["file"], str) and value["file"]:
        return _from_file(Path(value["file"]).expanduser())
    raise ValueError(
        "expected the secret as text, or a reference {env: VARIABLE} or {file: PATH}"
    )


def _from_environment(name: str) -> str:
    environ = _environ.get()
    if environ is None:
        environ = os.environ
    if name not in environ:
        raise ValueError(f"refers to environment variable {name}, which is not set")
    if not environ[name]:
        raise ValueError(f"refers to environment variable {name}, which is empty")
    return environ[name]


def _from_file(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"refers to file {path}, which does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"refers to {path}, which is a directory, not a file") from None
    except PermissionError:
        raise ValueError(f"refers to file {path}, which this user may not read") from None
    except UnicodeDecodeError:
        raise ValueError(f"refers to file {path}, which is not UTF-8 text") from None
    except OSError as exc:
        raise ValueError(f"refers to file {path}, which cannot be read: {exc.strerror}") from None
    # Editors add a final newline; a secret never ends with one.
    secret = text.rstrip("\r\n")
    if not secret:
        raise ValueError(f"refers to file {path}, which is empty")
    return secret


def _not_empty(value: SecretStr) -> SecretStr:
    if not value.get_secret_value():
        raise ValueError("is empty")
    return value


Secret = Annotated[SecretStr, BeforeValidator(resolve_reference), AfterValidator(_not_empty)]
"""A secret field: text inline, or `{env: NAME}` / `{file: PATH}`; printed as ********."""
