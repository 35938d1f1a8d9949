"""Which proxy (if any) carries a request to Microsoft: one decision for sign-in and Graph.

Sign-in (MSAL over `requests`) and Graph (httpx) each have their own way of reading
HTTPS_PROXY and NO_PROXY; both are turned off and asked here instead, so that the
configured proxy (`microsoft.proxy`) or the environment's is used the same way by both.
NO_PROXY follows curl's rules: `*` for everything, host names matching themselves and
their subdomains (a leading dot is ignored), IP addresses, CIDR ranges, an optional port.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx


def _env(environ: Mapping[str, str], name: str) -> str:
    # curl reads the lower-case names first; both are common.
    return (environ.get(name.lower()) or environ.get(name.upper()) or "").strip()


@dataclass(frozen=True)
class ProxyChoice:
    """A proxy URL for HTTPS (and HTTP) requests and the hosts that bypass it."""

    url: str | None = field(default=None, repr=False)
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def from_environment(cls, configured: str | None = None,
                         environ: Mapping[str, str] | None = None) -> ProxyChoice:
        """The configured proxy, else HTTPS_PROXY (or ALL_PROXY); NO_PROXY applies to both."""
        env = os.environ if environ is None else environ
        url = (configured or "").strip() or _env(env, "HTTPS_PROXY") or _env(env, "ALL_PROXY")
        if url and "://" not in url:
            url = f"http://{url}"
        entries = _env(env, "NO_PROXY").replace(" ", ",").split(",")
        return cls(url or None, tuple(e.strip() for e in entries if e.strip()))

    def for_url(self, url: str) -> str | None:
        """The proxy URL to use for `url`, or None to connect directly."""
        if not self.url:
            return None
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if any(_bypasses(entry, host, port) for entry in self.no_proxy):
            return None
        return self.url

    def describe(self) -> str:
        """The proxy in words for logs, without a password."""
        if not self.url:
            return "none"
        parts = urlsplit(self.url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))


def _bypasses(entry: str, host: str, port: int) -> bool:
    entry = entry.lower()
    if entry == "*":
        return True
    wanted_port: int | None = None
    if entry.startswith("["):  # [::1]:8080
        inside, _, rest = entry[1:].partition("]")
        entry = inside
        if rest.startswith(":") and rest[1:].isdigit():
            wanted_port = int(rest[1:])
    elif entry.count(":") == 1:
        name, _, number = entry.partition(":")
        if number.isdigit():
            entry, wanted_port = name, int(number)
    if wanted_port is not None and wanted_port != port:
        return False
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        try:
            return address in ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False
    name = entry.lstrip(".")
    return bool(name) and (host == name or host.endswith("." + name))


DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class ProxyRouting(httpx.AsyncBaseTransport):
    """An httpx transport that sends each request directly or through the chosen proxy."""

    def __init__(self, choice: ProxyChoice, *, verify: ssl.SSLContext | str | bool = True,
                 limits: httpx.Limits = DEFAULT_LIMITS) -> None:
        self.choice = choice
        self._verify = verify
        self._limits = limits
        self.direct = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
        self._via: dict[str, httpx.AsyncHTTPTransport] = {}

    def _through(self, proxy: str) -> httpx.AsyncHTTPTransport:
        transport = self._via.get(proxy)
        if transport is None:
            transport = self._via[proxy] = httpx.AsyncHTTPTransport(
                verify=self._verify, limits=self._limits, proxy=proxy)
        return transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send the request directly or through the proxy that `choice` names for its URL."""
        proxy = self.choice.for_url(str(request.url))
        transport = self.direct if proxy is None else self._through(proxy)
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the direct and the proxied connection pools."""
        await self.direct.aclose()
        for transport in self._via.values():
            await transport.aclose()


def microsoft_http_client(choice: ProxyChoice, *, verify: ssl.SSLContext | str | bool = True,
                          timeout: float = 15.0) -> httpx.AsyncClient:
    """The httpx client for Graph: the proxy decided by `choice`, the environment not reread."""
    return httpx.AsyncClient(transport=ProxyRouting(choice, verify=verify),
                             timeout=httpx.Timeout(timeout), trust_env=False)
