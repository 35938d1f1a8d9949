"""The public notification URL: HTTPS, and it answers Graph's validation handshake.

Graph creates a subscription only after POSTing `?validationToken=...` to the notification
URL and getting the decoded token back as text/plain within 10 seconds (graph.md 4.1). The
check does the same from this host: it proves DNS, the reverse proxy, TLS and m365pbx's
endpoint together (from outside it can only be tried by Graph itself).
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

import httpx

from m365pbx.check.findings import Finding, fail, ok, warn
from m365pbx.config import Settings
from m365pbx.config.models import SyncMode
from m365pbx.graph.proxy import ProxyChoice, microsoft_http_client

AREA = "public url"
SUBJECT = "notifications"
# Graph waits this long for the echo (graph.md 4.1).
GRAPH_DEADLINE_S = 10.0
NOT_RUNNING = ("If m365pbx is not running yet, start it and run the check again; otherwise "
               "check DNS, the firewall and that the reverse proxy forwards {path} to "
               "m365pbx's listen address ({listen}).")


def _https_finding(url: str) -> Finding:
    if urlsplit(url).scheme == "https":
        return ok(AREA, SUBJECT, f"{url} uses HTTPS")
    return fail(AREA, SUBJECT, f"{url} is plain HTTP: Graph delivers notifications only to "
                "https:// URLs with a trusted certificate",
                "Put m365pbx behind a reverse proxy with a certificate from a public CA "
                "(e.g. Let's Encrypt) and set public_url to its https:// address.")


async def handshake(url: str, *, wait_s: float = GRAPH_DEADLINE_S,
                    http: httpx.AsyncClient | None = None) -> tuple[bool, str]:
    """POST a validation request to `url`; (echoed correctly, what happened in words)."""
    token = f"Validation: m365pbx check {secrets.token_hex(8)}"
    own = http is None
    client = http or microsoft_http_client(ProxyChoice.from_environment(), timeout=wait_s)
    try:
        response = await client.post(url, params={"validationToken": token},
                                     headers={"Content-Type": "text/plain"})
    except httpx.TimeoutException:
        return False, f"no answer within {wait_s:g} s (Graph gives up after 10 s)"
    except httpx.TransportError as exc:
        return False, f"no connection: {type(exc).__name__}: {exc}"
    finally:
        if own:
            await client.aclose()
    kind = response.headers.get("content-type", "").split(";")[0].strip()
    if response.status_code != 200:
        return False, f"answered HTTP {response.status_code} instead of 200"
    if kind != "text/plain":
        return False, f"echoed the token as {kind or 'no content type'}, not text/plain"
    if response.text != token:
        return False, "answered 200 but not with the token it was sent"
    return True, "echoed the validation token as text/plain"


async def check_public_url(settings: Settings, *, wait_s: float = GRAPH_DEADLINE_S,
                           http: httpx.AsyncClient | None = None) -> list[Finding]:
    """The public URL's scheme and the validation handshake at the webhook URL."""
    url = settings.webhook_url
    if url is None:
        return [ok(AREA, SUBJECT, "no public_url: Teams presence is polled (set public_url to "
                   "an HTTPS address to get change notifications instead)")]
    if settings.teams_to_pbx.mode is SyncMode.POLLING:
        return [ok(AREA, SUBJECT, "teams_to_pbx.mode is polling: public_url is not used for "
                   "presence")]
    findings = [_https_finding(url)]
    listen = f"{settings.listen.host}:{settings.listen.port}"
    # Subscriptions name both URLs and Graph validates each (the lifecycle one for
    # subscriptionRemoved / reauthorizationRequired events).
    for target, path in ((url, settings.webhook_path),
                         (url + "/lifecycle", settings.webhook_path + "/lifecycle")):
        answered, words = await handshake(target, wait_s=wait_s, http=http)
        if answered:
            findings.append(ok(AREA, SUBJECT, f"{target} {words}"))
            continue
        findings.append(fail(AREA, SUBJECT, f"the validation handshake at {target} failed: "
                             f"{words}", NOT_RUNNING.format(path=path, listen=listen)))
        break  # the lifecycle URL sits behind the same door
    return findings


def unused_warning(settings: Settings) -> Finding | None:
    """A warning when notifications are wanted but no tenant has a service account."""
    if settings.webhook_url is None or settings.teams_to_pbx.mode is SyncMode.POLLING:
        return None
    if all(tenant.service_accounts for tenant in settings.tenants):
        return None
    names = ", ".join(t.name for t in settings.tenants if not t.service_accounts)
    return warn(AREA, SUBJECT, f"public_url is set but tenant {names} has no service "
                "account: Graph offers presence notifications only to delegated sign-ins, so "
                "its people are polled", "Declare a service account (a licensed Teams user) "
                "per 650 people, or leave it polled.")
