"""Field types shared by the configuration models: names, GUIDs, tenant ids, UPNs."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, ConfigDict

from m365pbx.config.secrets import looks_like_secret

MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
"""Every configuration section: unknown keys are errors, values never leak into tracebacks."""

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62})$")
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_DOMAIN = re.compile(r"^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_UPN = re.compile(r"^[^@\s]+@[^@\s]+$")
# Entra ID accepts these in token URLs, but they do not name one tenant (graph.md 0, "Hosts").
_MULTI_TENANT_ALIASES = frozenset({"common", "organizations", "consumers"})


def check_slug(value: str) -> str:
    """Accept a short lowercase name (letters, digits, hyphens) used to refer to an object."""
    if _SLUG.match(value):
        return value
    suggestion = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")[:63]
    shown = suggestion and _SLUG.match(suggestion) and not looks_like_secret(value)
    hint = f" such as {suggestion!r}" if shown else ""
    raise ValueError(
        "expected a short name of lowercase letters, digits and hyphens that starts with a "
        f"letter or digit{hint}"
    )


def check_guid(value: str) -> str:
    """Accept a GUID such as 00000000-0000-0000-0000-000000000000 (stored in lowercase)."""
    folded = value.strip().lower()
    if _GUID.match(folded):
        return folded
    raise ValueError("expected a GUID like 3f2504e0-4f89-11d3-9a0c-0305e82c3301")


def check_tenant_id(value: str) -> str:
    """Accept a directory (tenant) id GUID or a verified domain such as contoso.onmicrosoft.com."""
    folded = value.strip().lower()
    if folded in _MULTI_TENANT_ALIASES:
        raise ValueError(
            f"{folded!r} does not name one tenant; give the tenant's directory id (a GUID) "
            "or a verified domain such as contoso.onmicrosoft.com"
        )
    if _GUID.match(folded) or _DOMAIN.match(folded):
        return folded
    raise ValueError(
        "expected the tenant's directory id (a GUID) or a verified domain such as "
        "contoso.onmicrosoft.com"
    )


def check_upn(value: str) -> str:
    """Accept a user principal name, which looks like an e-mail address (user@contoso.com)."""
    stripped = value.strip()
    local, _, domain = stripped.partition("@")
    if _UPN.match(stripped) and _DOMAIN.match(domain.lower()) and local:
        return stripped
    raise ValueError("expected a user principal name like presence@contoso.com")


Slug = Annotated[str, AfterValidator(check_slug)]
Guid = Annotated[str, AfterValidator(check_guid)]
TenantId = Annotated[str, AfterValidator(check_tenant_id)]
Upn = Annotated[str, AfterValidator(check_upn)]
