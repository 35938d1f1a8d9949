"""Entra ID's public keys that sign the validation tokens of rich notifications.

Microsoft rotates its signing keys (several times a year, sooner in an emergency) and
publishes new ones at `/{tenant}/discovery/v2.0/keys` before signing with them. So the keys
are cached with an expiry (a day, as Microsoft advises re-reading them), a token signed
by a key we do not know makes us read them again at once (but at most once every few
minutes, so forged tokens with made-up key ids cannot make us hammer Entra), and however
many notifications arrive at once there is one fetch per tenant.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

from m365pbx.clock import Clock
from m365pbx.graph.auth import MICROSOFT_LOGIN
from m365pbx.graph.errors import M365Error
from m365pbx.graph.notifications import keys_from_jwks

log = logging.getLogger(__name__)


class SigningKeysUnavailable(M365Error):
    """Entra's keys document could not be read (and no earlier copy is at hand)."""

    retryable = True


@dataclass
class _Cached:
    keys: Mapping[str, Any] = field(default_factory=dict)
    fetched_at: float = float("-inf")
    expires_at: float = float("-inf")


class SigningKeys:
    """Per-tenant cache of Entra's signing keys (by `kid`), refreshed as described above."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        clock: Clock,
        *,
        login_host: str = MICROSOFT_LOGIN,
        max_age: float = 24 * 3600.0,
        refetch_interval: float = 300.0,
        timeout: float = 15.0,
    ) -> None:
        self.http = http
        self.clock = clock
        self.login_host = login_host.rstrip("/")
        self.max_age = max_age
        self.refetch_interval = refetch_interval
        self.timeout = timeout
        self.fetches = 0
        self.last_error: str | None = None
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def keys(self, tenant_id: str, kids: Collection[str] = ()) -> Mapping[str, Any]:
        """The tenant's keys by kid, holding every one of `kids` if Entra publishes it."""
        cached = self._cache.get(tenant_id)
        if cached is not None and cached.keys and not self._due(cached, kids):
            return cached.keys
        async with self._locks.setdefault(tenant_id, asyncio.Lock()):
            # Whoever waited here finds what the fetch before it brought.
            cached = self._cache.setdefault(tenant_id, _Cached())
            if not self._due(cached, kids):
                return self._known(cached)
            now = self.clock.now().timestamp()
            cached.fetched_at = now
            try:
                keys = await self._fetch(tenant_id)
            except SigningKeysUnavailable as exc:
                self.last_error = exc.describe()
                if not cached.keys:
                    raise
                log.warning("keeping the signing keys read before: %s", exc.describe())
                return cached.keys
            self.last_error = None
            unknown = set(kids) - set(keys)
            if unknown and cached.keys:
                log.warning("validation token signed by key %s, which tenant %s does not "
                            "publish", ", ".join(sorted(unknown)), tenant_id)
            cached.keys = keys
            cached.expires_at = now + self.max_age
            return keys

    def _known(self, cached: _Cached) -> Mapping[str, Any]:
        if not cached.keys:
            raise SigningKeysUnavailable(self.last_error or "Entra's signing keys are not read yet")
        return cached.keys

    def _due(self, cached: _Cached, kids: Collection[str]) -> bool:
        """Whether to read the keys again now."""
        now = self.clock.now().timestamp()
        # At most one fetch per interval, whatever the tokens say; sooner while we have none.
        interval = self.refetch_interval if cached.keys else min(30.0, self.refetch_interval)
        if now - cached.fetched_at < interval:
            return False
        return now >= cached.expires_at or any(kid not in cached.keys for kid in kids)

    async def _fetch(self, tenant_id: str) -> dict[str, Any]:
        url = f"{self.login_host}/{tenant_id}/discovery/v2.0/keys"
        self.fetches += 1
        try:
            response = await self.http.get(url, timeout=self.timeout)
        except httpx.TimeoutException:
            raise SigningKeysUnavailable("Entra ID did not send its signing keys in time",
                                         hint="m365pbx tries again in a few minutes.") from None
        except httpx.TransportError as exc:
            raise SigningKeysUnavailable(f"cannot reach Entra ID at "
                                         f"{urlsplit(self.login_host).netloc or self.login_host}"
                                         f" for its signing keys: {type(exc).__name__}",
                                         hint="Check the network path to Microsoft.") from None
        if not response.is_success:
            raise SigningKeysUnavailable(f"Entra ID answered {response.status_code} for its "
                                         "signing keys", status=response.status_code)
        try:
            document = response.json()
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
            keys = keys_from_jwks(document)
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError, TypeError,
                jwt.PyJWTError) as exc:
            raise SigningKeysUnavailable(f"Entra ID's signing keys cannot be read: {exc}"
                                         ) from None
        if not keys:
            raise SigningKeysUnavailable("Entra ID's keys document holds no RSA key")
        log.info("read %d signing keys of tenant %s", len(keys), tenant_id)
        return keys
