"""What every check needs: the settings, the clock, deadlines, and how Microsoft is reached."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from m365pbx.clock import Clock, SystemClock
from m365pbx.config import Settings, Tenant
from m365pbx.graph.auth import Authority
from m365pbx.graph.proxy import ProxyChoice, microsoft_http_client


@dataclass
class CheckContext:
    """The installation being checked and how to reach what it talks to."""

    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    # Seconds to wait for any one answer (a host, a sign-in, a PBX).
    timeout: float = 10.0
    # Stored refresh tokens of device-code service accounts, by UPN (read by the caller).
    refresh_tokens: Mapping[str, str] = field(default_factory=dict)
    # Why the stored sign-ins could not be read, in words ("" when they were).
    store_problem: str = ""

    @property
    def login_url(self) -> str:
        """The sign-in host, without a trailing slash."""
        return str(self.settings.microsoft.login_url).rstrip("/")

    @property
    def graph_url(self) -> str:
        """The Graph host, without a trailing slash."""
        return str(self.settings.microsoft.graph_url).rstrip("/")

    @property
    def proxy(self) -> ProxyChoice:
        """The proxy to Microsoft: `microsoft.proxy`, else HTTPS_PROXY (NO_PROXY applies)."""
        return ProxyChoice.from_environment(self.settings.microsoft.proxy)

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """The TLS trust for Microsoft: the system's, plus `microsoft.ca_file` if set."""
        ca_file = self.settings.microsoft.ca_file
        return ssl.create_default_context(cafile=str(ca_file)) if ca_file else True

    def microsoft_client(self) -> httpx.AsyncClient:
        """An HTTP client to Microsoft as the service builds it (proxy, trust)."""
        return microsoft_http_client(self.proxy, verify=self.verify, timeout=self.timeout)

    def authority(self, tenant: Tenant) -> Authority:
        """Where the tenant signs in, as the service does it."""
        ca_file = self.settings.microsoft.ca_file
        return Authority(str(tenant.tenant_id), host=self.login_url,
                         verify=str(ca_file) if ca_file else True, proxy=self.proxy,
                         timeout=(self.timeout, self.timeout))
