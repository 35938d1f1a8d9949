"""The HTTP session MSAL uses: TLS trust, the proxy, a deadline, the user-realm port quirk.

MSAL builds the user-realm look-up of the password flow from the authority's host name
only, dropping any port (graph.md 1.1c: `https://{hostname}/common/userrealm/...`). Real
Entra ID is on 443 so nothing changes there; for an authority on another port (a local
simulator) requests to that host without a port are sent to the authority's port.

MSAL's own errors from this layer (requests' exceptions, a ValueError for a failed OIDC
discovery) become SignInErrors here, so that callers see one kind of failure.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from msal.exceptions import MsalServiceError

from m365pbx.graph.errors import SignInError, SignInUnavailable, sign_in_error
from m365pbx.graph.proxy import ProxyChoice

# Seconds to connect and to wait for an answer: a login host that never answers must not
# hold a sign-in (and the tenant's work behind it) forever.
DEFAULT_TIMEOUT = (10.0, 30.0)


class AuthoritySession(requests.Session):
    """A requests session pinned to one CA bundle and proxy, mending MSAL's port-less look-ups."""

    def __init__(self, authority_host: str, *, verify: bool | str = True,
                 proxy: ProxyChoice | None = None,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.verify = verify
        # REQUESTS_CA_BUNDLE would override `verify` per request and HTTPS_PROXY would be
        # read a second way: the configured trust and `proxy` (which reads the environment
        # the same way for Graph) win.
        self.trust_env = False
        self.proxy = proxy or ProxyChoice()
        self.timeout = timeout
        parts = urlsplit(authority_host)
        self._host = parts.hostname or ""
        self._port = parts.port
        # The last Retry-After Entra ID sent with a 429 or 5xx (seconds), for the caller's wait.
        self.retry_after: float | None = None

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> requests.Response:
        """Send a request, restoring the authority's port where MSAL dropped it."""
        text = url.decode() if isinstance(url, bytes) else url
        parts = urlsplit(text)
        if self._port and parts.hostname == self._host and parts.port is None:
            netloc = f"[{self._host}]" if ":" in self._host else self._host
            text = urlunsplit(parts._replace(netloc=f"{netloc}:{self._port}"))
        kwargs.setdefault("verify", self.verify)
        kwargs.setdefault("timeout", self.timeout)
        via = self.proxy.for_url(text)
        kwargs["proxies"] = {"http": via, "https": via} if via else {}
        verb = method.decode() if isinstance(method, bytes) else method
        response = super().request(verb, text, *args, **kwargs)
        self.retry_after = None
        if response.status_code == 429 or response.status_code >= 500:
            self.retry_after = _seconds(response.headers.get("Retry-After"))
        return response


def _seconds(value: str | None) -> float | None:
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def sign_in_failure(exc: BaseException, host: str) -> SignInError | None:
    """The SignInError an exception from MSAL's HTTP layer stands for (None: not one of those)."""
    where = urlsplit(host).netloc or host
    retry = "m365pbx retries with backoff."
    # MSAL re-raises a failed discovery as "Unable to get authority configuration": the
    # exception it wraps says why.
    for inner in (exc.__cause__, exc.__context__):
        if inner is not None and (found := sign_in_failure(inner, host)) is not None:
            return found
    if isinstance(exc, requests.Timeout):
        return SignInUnavailable(f"cannot reach Entra ID at {where}: no answer in time",
                                 hint=f"Check the network path to the sign-in host. {retry}")
    if isinstance(exc, requests.exceptions.ProxyError):
        return SignInUnavailable(f"cannot reach Entra ID at {where}: the proxy refused or "
                                 "did not answer",
                                 hint=f"Check microsoft.proxy or HTTPS_PROXY. {retry}")
    if isinstance(exc, requests.exceptions.SSLError):
        return SignInUnavailable(f"cannot reach Entra ID at {where}: the TLS handshake failed",
                                 hint="If a TLS-inspecting proxy is in the way, name its CA in "
                                      f"microsoft.ca_file. {retry}")
    if isinstance(exc, requests.ConnectionError):
        return SignInUnavailable(f"cannot reach Entra ID at {where}: connection failed",
                                 hint="Check DNS, the firewall and the proxy (microsoft.proxy "
                                      f"or HTTPS_PROXY) on the way to the sign-in host. {retry}")
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return SignInUnavailable(f"Entra ID at {where} answered {status}", hint=retry,
                                 status=status)
    text = str(exc)
    if isinstance(exc, MsalServiceError):
        # MSAL's own raise_for_status, for an error answer that is not Entra's JSON.
        status = int(match.group(1)) if (match := re.search(r"HTTP Error: (\d+)", text)) else 0
        if status == 429 or status >= 500:
            return SignInUnavailable(f"Entra ID at {where} answered {status}", hint=retry,
                                     status=status)
        return SignInError(f"Entra ID at {where} answered {status or text}", status=status)
    if isinstance(exc, ValueError) and "OIDC Discovery failed" in text:
        # MSAL 1.x: "OIDC Discovery failed on URL. HTTP status: 400, Error: {json}"
        _, _, body = text.partition("Error: ")
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if isinstance(answer, dict):
            codes = answer.get("error_codes") or [0]
            return sign_in_error(str(answer.get("error", "")), int(codes[0]),
                                 str(answer.get("error_description", "")), 400)
        return SignInError(f"Entra ID at {where} does not know this tenant",
                           hint="Check the tenant id or domain in the configuration.")
    if isinstance(exc, (ValueError, RuntimeError)) and "OIDC" in text:
        return SignInUnavailable(f"Entra ID at {where} did not describe the tenant", hint=retry)
    return None
