"""The result of one PUBLISH or SUBSCRIBE exchange, and what the caller should do next."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from m365pbx.pbx.sip.message import SipResponse
from m365pbx.pbx.sip.retry import parse_retry_after
from m365pbx.pbx.sip.useragent import BadCredentials

# Server trouble that may pass: retry with backoff (RFC 3261 §21.5, §21.6, and 408/480).
_TRANSIENT = frozenset({408, 480, 500, 502, 503, 504})


class OutcomeKind(StrEnum):
    """What became of an exchange."""

    OK = "ok"
    RETRY = "retry"
    FAILED = "failed"
    BAD_CREDENTIALS = "bad_credentials"


@dataclass(frozen=True, slots=True)
class Outcome:
    """Kind, a sentence for admins, the server's Retry-After and when to refresh."""

    kind: OutcomeKind
    detail: str = ""
    retry_after: float | None = None
    refresh_in: float | None = None

    @property
    def ok(self) -> bool:
        """True if the exchange succeeded."""
        return self.kind is OutcomeKind.OK


def ok(refresh_in: float | None = None) -> Outcome:
    """A success, with the seconds until the next refresh (None: nothing to refresh)."""
    return Outcome(OutcomeKind.OK, refresh_in=refresh_in)


def from_response(response: SipResponse, what: str) -> Outcome:
    """Classify a failure response the caller did not handle itself."""
    detail = f"{what}: {response.status} {response.reason}".strip()
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if response.status in _TRANSIENT or retry_after is not None:
        return Outcome(OutcomeKind.RETRY, detail, retry_after)
    if response.status == 403:
        return Outcome(OutcomeKind.BAD_CREDENTIALS, f"{detail} (not allowed for this account)")
    if response.status == 489:
        return Outcome(OutcomeKind.FAILED, f"{detail} (the server does not serve this event)")
    return Outcome(OutcomeKind.FAILED, detail)


def refresh_delay(granted: int, margin: float, minimum: float = 1.0) -> float:
    """When to refresh something granted for `granted` seconds.

    At the earlier of `granted - margin` and 80% of `granted` (RFC 6665 §4.1.2.2 asks
    for a refresh before expiry; 80% keeps short grants safe), never below `minimum`.
    """
    return max(minimum, min(granted - margin, granted * 0.8))


def from_exception(error: Exception, what: str) -> Outcome:
    """Classify an exception raised while sending (timeouts, transport, credentials)."""
    if isinstance(error, BadCredentials):
        return Outcome(OutcomeKind.BAD_CREDENTIALS, f"{what}: {error}")
    if isinstance(error, TimeoutError):
        return Outcome(OutcomeKind.RETRY, f"{what}: no answer from the server")
    return Outcome(OutcomeKind.RETRY, f"{what}: {error}")
