"""Pointing the real MSAL at the simulator through its public parameters only."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from m365sim.server import RunningServer


class SimulatorSession(requests.Session):
    """A requests session that trusts the simulator's CA and finds its port.

    MSAL builds the user-realm URL from the authority's host name only, so the port is
    lost (graph.md 1.1c): requests to the simulator's host without a port go to its port.
    """

    def __init__(self, server: RunningServer) -> None:
        super().__init__()
        self.verify = str(server.ca_file)
        parts = urlsplit(server.url)
        self._host = parts.hostname
        self._netloc = parts.netloc
        # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE would override `verify` (requests merges
        # the environment into each request); the tests clear them, this makes sure.
        self.trust_env = False
        self.seen: list[str] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any,  # type: ignore[override]
                **kwargs: Any) -> requests.Response:
        """Send the request, adding the simulator's port where MSAL dropped it."""
        text = url.decode() if isinstance(url, bytes) else url
        parts = urlsplit(text)
        if parts.hostname == self._host and parts.port is None:
            text = urlunsplit(parts._replace(netloc=self._netloc))
        self.seen.append(text)
        return super().request(method, text, *args, **kwargs)


def authority(server: RunningServer, tenant: str) -> str:
    """The MSAL authority URL for a tenant segment on the simulator."""
    return f"{server.url}/{tenant}"


def assert_msal_error(result: dict[str, Any], error: str, code: int) -> None:
    """MSAL hands Entra's error body back as a dict: error, error_codes, description."""
    assert "access_token" not in result, result
    assert result["error"] == error, result
    assert result["error_codes"] == [code], result
    assert result["error_description"].startswith(f"AADSTS{code}: "), result
