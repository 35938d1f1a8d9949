"""Knobs of notification delivery: Graph's documented limits, and the faults tests inject.

Defaults are Microsoft's numbers (graph.md 4.1, 4.5, 4.6); tests shrink the timeouts and
turn on loss, duplicates and reordering through `PUT /_sim/delivery` or by assigning the
attributes directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from m365sim.errors import GraphError

# SimSettings.extra keys this part reads (docs/simulator/subscriptions.md).
EXTRA_ALLOW_HTTP = "notification_allow_http_loopback"
EXTRA_VERIFY_TLS = "notification_verify_tls"
EXTRA_CA_FILE = "notification_ca_file"


@dataclass
class DeliverySettings:
    """How the simulator validates endpoints and delivers notifications."""

    # graph.md 4.1: the endpoint must answer the validation request within 10 s.
    validation_timeout_s: float = 10.0
    # graph.md 4.5: HTTP client timeout 3 s; a response slower than 2,900 ms is "slow".
    delivery_timeout_s: float = 3.0
    slow_response_s: float = 2.9
    # graph.md 4.5: failed notifications are retried for up to 4 hours, then dropped.
    retry_window_s: float = 4 * 3600.0
    # Chosen: the first retry after 10 s, doubling, at most every 10 minutes (the
    # interval Graph documents for its failed/throttled queue).
    retry_initial_s: float = 10.0
    retry_max_s: float = 600.0
    # graph.md 4.5 throttling: counters per endpoint over 10-minute windows.
    throttle_window_s: float = 600.0
    throttle_min_notifications: int = 100
    throttle_slow_share: float = 0.10
    throttle_drop_share: float = 0.15
    throttle_delay_s: float = 600.0
    # Chosen: at most this many notifications in one POST, and POSTs in flight per URL
    # (one keeps the order of arrival the order of the changes).
    max_batch: int = 100
    max_in_flight: int = 1
    # Chosen: reauthorizationRequired this long before the authorizing token or the
    # subscription expires, then again every interval (graph.md 4.6).
    reauthorization_lead_s: float = 900.0
    reauthorization_interval_s: float = 900.0
    # Injected faults, per change notification.
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: bool = False
    seed: int | None = None
    # Delivery log length (GET /_sim/deliveries).
    log_size: int = 10_000
    # http:// notification URLs on loopback hosts (graph.md 4.1 requires HTTPS).
    allow_http_loopback: bool = False
    verify_tls: bool = True
    ca_file: str | None = None

    @classmethod
    def from_extra(cls, extra: dict[str, object]) -> DeliverySettings:
        """Settings with the SimSettings.extra keys of this part applied."""
        settings = cls()
        settings.allow_http_loopback = bool(extra.get(EXTRA_ALLOW_HTTP, False))
        settings.verify_tls = bool(extra.get(EXTRA_VERIFY_TLS, True))
        ca_file = extra.get(EXTRA_CA_FILE)
        settings.ca_file = str(ca_file) if ca_file else None
        return settings

    def faults_json(self, latency_s: tuple[float, float]) -> dict[str, Any]:
        """The injectable part, as `GET/PUT /_sim/delivery` shows it."""
        return {
            "latency_ms": [latency_s[0] * 1000.0, latency_s[1] * 1000.0],
            "loss": self.loss,
            "duplicate": self.duplicate,
            "reorder": self.reorder,
            "seed": self.seed,
            "validation_timeout_ms": self.validation_timeout_s * 1000.0,
            "delivery_timeout_ms": self.delivery_timeout_s * 1000.0,
            "max_batch": self.max_batch,
            "max_in_flight": self.max_in_flight,
        }


def _probability(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise GraphError(400, "BadRequest", f"'{key}' must be a number from 0 to 1.")
    return float(value)


def _positive_ms(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise GraphError(400, "BadRequest", f"'{key}' must be a positive number of ms.")
    return float(value) / 1000.0


def _count(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise GraphError(400, "BadRequest", f"'{key}' must be a positive integer.")
    return value


def parse_latency(value: object) -> tuple[float, float]:
    """`[min_ms, max_ms]` as seconds, or GraphError 400."""
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            or not 0 <= value[0] <= value[1]):
        raise GraphError(400, "BadRequest",
                         "'latency_ms' must be [min, max] with 0 <= min <= max.")
    return float(value[0]) / 1000.0, float(value[1]) / 1000.0


def apply_faults(settings: DeliverySettings, body: dict[str, Any]) -> tuple[float, float] | None:
    """Check a `PUT /_sim/delivery` body whole, then apply it; returns a new latency."""
    known = {"latency_ms", "loss", "duplicate", "reorder", "seed", "validation_timeout_ms",
             "delivery_timeout_ms", "max_batch", "max_in_flight"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise GraphError(400, "BadRequest", f"Unknown delivery setting(s): {', '.join(unknown)}.")
    latency = parse_latency(body["latency_ms"]) if "latency_ms" in body else None
    loss = _probability(body, "loss")
    duplicate = _probability(body, "duplicate")
    reorder = body.get("reorder")
    if reorder is not None and not isinstance(reorder, bool):
        raise GraphError(400, "BadRequest", "'reorder' must be true or false.")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise GraphError(400, "BadRequest", "'seed' must be an integer.")
    validation_timeout = _positive_ms(body, "validation_timeout_ms")
    delivery_timeout = _positive_ms(body, "delivery_timeout_ms")
    max_batch = _count(body, "max_batch")
    max_in_flight = _count(body, "max_in_flight")
    if loss is not None:
        settings.loss = loss
    if duplicate is not None:
        settings.duplicate = duplicate
    if reorder is not None:
        settings.reorder = reorder
    if "seed" in body:
        settings.seed = seed
    if validation_timeout is not None:
        settings.validation_timeout_s = validation_timeout
    if delivery_timeout is not None:
        settings.delivery_timeout_s = delivery_timeout
    if max_batch is not None:
        settings.max_batch = max_batch
    if max_in_flight is not None:
        settings.max_in_flight = max_in_flight
    return latency
