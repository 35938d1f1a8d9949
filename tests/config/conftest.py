"""Helpers for configuration tests: write a YAML file, load it with a chosen environment."""

from __future__ import annotations

import copy
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from m365pbx.config import ConfigError, Settings, load_config

GUID_A = "0c6e2f1a-7b3d-4e59-8a10-2f4d6b8c9e01"
GUID_B = "5a9b3c7d-1e2f-4a6b-8c0d-9e1f2a3b4c5d"
SECRET = "Zebra-Quokka-S3cret!7"
"""A distinctive secret: no message or printed output may ever contain it."""

VALID: dict[str, Any] = {
    "tenants": [
        {
            "name": "contoso",
            "tenant_id": "contoso.onmicrosoft.com",
            "credentials": [
                {
                    "name": "graph",
                    "client_id": GUID_A,
                    "client_secret": SECRET,
                    "permissions": ["presence.read", "presence.write"],
                }
            ],
            "service_accounts": [
                {"upn": "presence@contoso.com", "credential": "graph", "sign_in": "device_code"}
            ],
        }
    ],
    "pbx_connections": [
        {
            "name": "office",
            "kind": "sip",
            "tenant": "contoso",
            "settings": {"server": "sip.contoso.local", "domain": "contoso.local"},
        }
    ],
}


def valid() -> dict[str, Any]:
    """Return a fresh copy of a small valid configuration."""
    return copy.deepcopy(VALID)


Write = Callable[[object], Path]
Load = Callable[..., Settings]
Problems = Callable[..., ConfigError]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """Write a dict (as YAML) or text (dedented) to m365pbx.yaml in a temporary directory."""

    def _write(content: object) -> Path:
        path = tmp_path / "m365pbx.yaml"
        if isinstance(content, str):
            path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
        else:
            path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def load(write: Write) -> Load:
    """Write the content and load it with the given environment (empty by default)."""

    def _load(content: object, environ: Mapping[str, str] | None = None) -> Settings:
        return load_config(write(content), environ=environ or {})

    return _load


@pytest.fixture
def problems(load: Load) -> Problems:
    """Write the content, expect loading to fail, and return the ConfigError."""

    def _problems(content: object, environ: Mapping[str, str] | None = None) -> ConfigError:
        with pytest.raises(ConfigError) as caught:
            load(content, environ)
        assert SECRET not in str(caught.value)
        return caught.value

    return _problems
