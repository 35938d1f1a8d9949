"""The sign-in and Graph hosts: reachable (through the proxy), TLS chain valid, clock skew.

One unauthenticated GET per host is enough: any HTTP answer proves the path (DNS, firewall,
proxy, TLS), and every answer carries Microsoft's `Date`, which is what tokens and
notifications are checked against.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx

from m365pbx.check.context import CheckContext
from m365pbx.check.findings import Finding, fail, ok, warn

AREA = "hosts"
# Within this much the clocks agree well enough (the Date header has whole seconds, and
# the request takes its time).
SKEW_OK_S = 30.0
# Beyond this, tokens and certificate sign-ins fail: Entra and Graph allow five minutes.
SKEW_FAIL_S = 300.0
CERT_WARN_DAYS = 14
NTP_FIX = ("Synchronise this host's clock with NTP (e.g. 'timedatectl set-ntp true', or "
           "chrony/ntpd), then run the check again.")


@dataclass
class HostAnswer:
    """What one host answered: its Date and TLS certificate, or None with the findings."""

    date: datetime | None
    findings: list[Finding]


def _ssl_failure(exc: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _certificate_expiry(response: httpx.Response) -> datetime | None:
    stream = response.extensions.get("network_stream")
    try:
        ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
        cert = ssl_object.getpeercert() if ssl_object is not None else None
    except (AttributeError, ValueError):  # a closed stream, or no TLS at all
        return None
    not_after = cert.get("notAfter") if isinstance(cert, dict) else None
    if not isinstance(not_after, str):
        return None
    return datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after)).astimezone()


def _tls_findings(ctx: CheckContext, name: str, url: str,
                  response: httpx.Response) -> list[Finding]:
    host = urlsplit(url).netloc
    if urlsplit(url).scheme != "https":
        return [warn(AREA, name, f"{host} is reached over plain HTTP: nothing is encrypted",
                     "Use the https:// address (plain HTTP is only for a local simulator).")]
    expiry = _certificate_expiry(response)
    if expiry is None:
        return [ok(AREA, name, f"the TLS certificate chain of {host} is valid")]
    left = expiry - ctx.clock.now()
    if left < timedelta(days=CERT_WARN_DAYS):
        return [warn(AREA, name, f"the TLS certificate of {host} is valid but ends on "
                     f"{expiry:%Y-%m-%d}",
                     "If a TLS-inspecting proxy presents it, renew its certificate.")]
    return [ok(AREA, name, f"the TLS certificate chain of {host} is valid (until "
               f"{expiry:%Y-%m-%d})")]


async def probe_host(ctx: CheckContext, http: httpx.AsyncClient, name: str,
                     url: str) -> HostAnswer:
    """GET `url` once; findings on reachability and TLS, and the answer's Date."""
    host = urlsplit(url).netloc
    via = ctx.proxy.for_url(url)
    route = f" through the proxy {ctx.proxy.describe()}" if via else ""
    try:
        response = await http.get(url)
    except httpx.ProxyError as exc:
        return HostAnswer(None, [fail(
            AREA, name, f"cannot reach {host}: the proxy {ctx.proxy.describe()} refused or "
            f"failed ({exc})", "Check microsoft.proxy (or HTTPS_PROXY) and that the proxy "
            f"allows CONNECT to {host}.")])
    except httpx.TimeoutException:
        return HostAnswer(None, [fail(
            AREA, name, f"{host} did not answer{route} within {ctx.timeout:g} s",
            "Check the firewall and the route to the host (or set microsoft.proxy if this "
            "network reaches the internet only through a proxy).")])
    except httpx.TransportError as exc:
        failure = _ssl_failure(exc)
        if failure is not None:
            reason = getattr(failure, "verify_message", "") or failure.reason or str(failure)
            return HostAnswer(None, [fail(
                AREA, name, f"the TLS certificate chain of {host} is not trusted ({reason})",
                "If a TLS-inspecting proxy is in the way, put its CA certificate in a PEM "
                "file and name it in microsoft.ca_file; check this host's clock too.")])
        if via:
            return HostAnswer(None, [fail(
                AREA, name, f"cannot reach the proxy {ctx.proxy.describe()} on the way to "
                f"{host}: {type(exc).__name__}: {exc}", "Check microsoft.proxy (or "
                "HTTPS_PROXY): the address, and that the proxy runs and this host may use it.")])
        return HostAnswer(None, [fail(
            AREA, name, f"cannot reach {host}{route}: {type(exc).__name__}: {exc}",
            "Check DNS, the firewall and the proxy (microsoft.proxy or HTTPS_PROXY) on the "
            f"way to {host}.")])
    findings = [ok(AREA, name, f"{host} answers{route} (HTTP {response.status_code})")]
    findings += _tls_findings(ctx, name, url, response)
    date: datetime | None = None
    if value := response.headers.get("date"):
        try:
            date = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            date = None
    return HostAnswer(date, findings)


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 120:
        return f"{round(seconds)} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def skew_finding(ctx: CheckContext, date: datetime | None, source: str) -> Finding:
    """How far this host's clock is from Microsoft's `Date`."""
    if date is None:
        return warn(AREA, "clock", f"{source} sent no Date header: the clock was not compared",
                    "Nothing to fix here; compare the clock with an NTP server by hand.")
    skew = (date - ctx.clock.now()).total_seconds()
    words = "behind" if skew > 0 else "ahead of"
    said = f"this host's clock is {_span(skew)} {words} Microsoft's (Date of {source})"
    if abs(skew) <= SKEW_OK_S:
        return ok(AREA, "clock", f"this host's clock agrees with Microsoft's (within "
                  f"{_span(SKEW_OK_S)})")
    if abs(skew) <= SKEW_FAIL_S:
        return warn(AREA, "clock", said, NTP_FIX)
    return fail(AREA, "clock", f"{said}: sign-ins with a certificate, tokens and rich "
                "notifications are refused beyond 5 minutes", NTP_FIX)


async def check_hosts(ctx: CheckContext, http: httpx.AsyncClient) -> list[Finding]:
    """Both hosts: reachable, TLS, and the clock compared with their Date."""
    findings: list[Finding] = []
    dates: list[tuple[datetime, str]] = []
    # Small answers: the tenant-independent signing keys, and a Graph call without a token
    # (401 at once).
    for name, base, path in (("sign-in host", ctx.login_url, "/common/discovery/v2.0/keys"),
                             ("Graph host", ctx.graph_url, "/v1.0/organization")):
        answer = await probe_host(ctx, http, name, base + path)
        findings += answer.findings
        if answer.date is not None:
            dates.append((answer.date, urlsplit(base).netloc))
    if dates:
        findings.append(skew_finding(ctx, dates[-1][0], dates[-1][1]))
    return findings
