"""Which Entra tenant a declared tenant is: its directory id, and whether it is declared twice.

`tenant_id` may be a GUID or a verified domain (docs/configuration.md). Microsoft names
tenants by GUID in everything it sends (tokens, notifications), so the GUID is looked up
once at sign-in and used everywhere. Two declarations naming the same tenant (by id and by
domain, or by two domains) would poll it twice and fight over its subscriptions: the
first one to know its id runs, the other is reported and not run.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime
from typing import Any

import httpx

from m365pbx.clock import Clock
from m365pbx.graph.errors import SignInError
from m365pbx.graph.tenant_id import is_tenant_guid, resolve_tenant_id

log = logging.getLogger(__name__)


class TenantClaims:
    """The running tenants by directory id: one declaration per Entra tenant runs."""

    def __init__(self) -> None:
        self._holders: dict[str, str] = {}

    def claim(self, name: str, tenant_id: str) -> str | None:
        """Take `tenant_id` for tenant `name`; the name holding it already, if another."""
        holder = self._holders.setdefault(tenant_id, name)
        return None if holder == name else holder


class TenantIdentity:
    """A declared tenant's directory id, looked up (with retries) before the tenant runs."""

    def __init__(self, name: str, configured: str, *, http: httpx.AsyncClient,
                 login_host: str, clock: Clock, claims: TenantClaims | None = None,
                 rng: random.Random | None = None) -> None:
        self.name = name
        self.configured = configured
        self.http = http
        self.login_host = login_host
        self.clock = clock
        self.claims = claims
        self.tenant_id: str | None = configured.lower() if is_tenant_guid(configured) else None
        self.error: str | None = None
        # What to do about `error`, and whether looking up again may mend it by itself.
        self.fix: str | None = None
        self.transient = False
        self.since: datetime | None = None
        self.duplicate_of: str | None = None
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    async def settle(self) -> bool:
        """Look up the directory id (retrying with backoff) and claim it.

        Return False when another declared tenant is the same Entra tenant: this one must
        not run.
        """
        failures = 0
        while self.tenant_id is None:
            try:
                self.tenant_id = await resolve_tenant_id(self.http, self.login_host,
                                                         self.configured)
            except SignInError as exc:
                failures += 1
                # Unreachable or busy is not a wrong tenant_id: the status says which.
                self.transient = exc.retryable or exc.status >= 500
                self.fix = exc.hint or ("Look the tenant up again later" if self.transient
                                        else "Check the tenant's tenant_id in the configuration")
                self._set_error(f"cannot look up the id of tenant {self.configured!r}: "
                                f"{exc.message}")
                log.warning("tenant %s: %s. %s", self.name, self.error, self.fix)
                delay = min(900.0, 5.0 * 2 ** min(failures - 1, 8))
                await self.clock.sleep(self._rng.uniform(delay / 2, delay))
        if self.tenant_id != self.configured.lower():
            log.info("tenant %s: %s is tenant id %s", self.name, self.configured, self.tenant_id)
        self._set_error(None)
        holder = None if self.claims is None else self.claims.claim(self.name, self.tenant_id)
        if holder is not None:
            self.duplicate_of = holder
            self.transient = False
            self.fix = ("Remove one of the two declarations from the configuration "
                        "(tenant_id may be the id or a domain, not both)")
            self._set_error(
                f"the same Entra tenant ({self.tenant_id}) as tenant {holder!r}, declared "
                "twice; this declaration is not run")
            log.error("tenant %s: %s. %s", self.name, self.error, self.fix)
            return False
        return True

    def _set_error(self, error: str | None) -> None:
        if error != self.error:
            self.since = self.clock.now()
        self.error = error

    def health(self) -> dict[str, Any]:
        """The tenant's id as configured and as looked up, and what is wrong, since when."""
        return {"configured": self.configured, "id": self.tenant_id, "error": self.error,
                "since": None if self.since is None else self.since.astimezone(UTC).isoformat()}
