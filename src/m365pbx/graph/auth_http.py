"""The HTTP session MSAL uses: TLS trust and the user-realm port quirk.

MSAL builds the user-realm look-up of the password flow from the authority's host name
only, dropping any port (graph.md 1.1c: `https://{hostname}/common/userrealm/...`). Real
Entra ID is on 443 so nothing changes there; for an authority on another port (a local
simulator) requests to that host without a port are sent to the authority's port.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests


class AuthoritySession(requests.Session):
    """A requests session pinned to one CA bundle, mending MSAL's port-less look-ups."""

    def __init__(self, authority_host: str, *, verify: bool | str = True) -> None:
        super().__init__()
        self.verify = verify
        # REQUESTS_CA_BUNDLE would override `verify` per request; the configured trust wins.
        self.trust_env = False
        parts = urlsplit(authority_host)
        self._host = parts.hostname or ""
        self._port = parts.port

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> requests.Response:
        """Send a request, restoring the authority's port where MSAL dropped it."""
        text = url.decode() if isinstance(url, bytes) else url
        parts = urlsplit(text)
        if self._port and parts.hostname == self._host and parts.port is None:
            netloc = f"[{self._host}]" if ":" in self._host else self._host
            text = urlunsplit(parts._replace(netloc=f"{netloc}:{self._port}"))
        kwargs.setdefault("verify", self.verify)
        verb = method.decode() if isinstance(method, bytes) else method
        return super().request(verb, text, *args, **kwargs)
