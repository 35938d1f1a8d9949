"""A tenant's directory id (a GUID) from the name it was configured with (GUID or domain).

Entra ID accepts a verified domain wherever a tenant id goes in login URLs, but what
Microsoft then sends back (the `tid` of tokens, the `tenantId` of notifications) is always
the GUID. The tenant's OpenID metadata names it in its `issuer`
(`https://login.microsoftonline.com/{tenant id}/v2.0`, graph.md 1.4), without credentials.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import httpx

from m365pbx.graph.errors import SignInError, SignInUnavailable, sign_in_error

LOOKUP_TIMEOUT = 15.0
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_tenant_guid(value: str) -> bool:
    """Whether `value` is a directory id GUID rather than a domain."""
    return _GUID.fullmatch(value.strip().lower()) is not None


def tenant_id_from_issuer(issuer: str) -> str | None:
    """The GUID in an OpenID issuer such as `https://login.microsoftonline.com/{id}/v2.0`."""
    for segment in issuer.lower().split("/"):
        if _GUID.fullmatch(segment):
            return segment
    return None


async def resolve_tenant_id(http: httpx.AsyncClient, login_host: str, tenant: str) -> str:
    """The tenant's directory id: `tenant` itself when it is a GUID, else from Entra's metadata.

    Raise SignInError (SignInUnavailable when trying again later may help) with the reason.
    """
    name = tenant.strip().lower()
    if is_tenant_guid(name):
        return name
    url = f"{login_host.rstrip('/')}/{name}/v2.0/.well-known/openid-configuration"
    where = urlsplit(login_host).netloc or login_host
    retry = "m365pbx retries with backoff."
    try:
        response = await http.get(url, timeout=LOOKUP_TIMEOUT)
    except httpx.TimeoutException:
        raise SignInUnavailable(f"cannot reach Entra ID at {where}: no answer in time to the "
                                f"look-up of tenant {name!r}",
                                hint=f"Check the network path to the sign-in host. {retry}"
                                ) from None
    except httpx.ProxyError:
        raise SignInUnavailable(f"cannot reach Entra ID at {where}: the proxy refused or did "
                                "not answer", hint=f"Check microsoft.proxy or HTTPS_PROXY. "
                                f"{retry}") from None
    except httpx.TransportError as exc:
        raise SignInUnavailable(f"cannot reach Entra ID at {where} to look up tenant "
                                f"{name!r}: {type(exc).__name__}",
                                hint="Check DNS, the firewall and the proxy (microsoft.proxy "
                                     f"or HTTPS_PROXY) on the way to the sign-in host. {retry}"
                                ) from None
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not response.is_success:
        if isinstance(body, dict) and body.get("error"):
            codes = body.get("error_codes") or [0]
            raise sign_in_error(str(body["error"]), int(codes[0]),
                                str(body.get("error_description", "")), response.status_code)
        raise sign_in_error("", 0, f"tenant look-up answered {response.status_code}",
                            response.status_code)
    issuer = str(body.get("issuer", "")) if isinstance(body, dict) else ""
    found = tenant_id_from_issuer(issuer)
    if found is None:
        raise SignInError(f"the OpenID metadata of tenant {name!r} names no tenant id",
                          hint="Give the tenant's directory id (a GUID) as tenant_id.")
    return found
