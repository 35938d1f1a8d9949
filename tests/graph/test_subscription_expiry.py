"""The expiry a subscription asks for: Graph's maximum by Graph's clock, less a margin
(issue 18, item 11)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from m365pbx.graph.errors import BadRequest, graph_error
from m365pbx.graph.subscriptions import (
    EXPIRY_MARGIN,
    PRESENCE_MAX_LIFETIME,
    expiry_for,
    expiry_refused,
)

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def test_the_expiry_stays_a_margin_short_of_the_maximum() -> None:
    expires = expiry_for(NOW, PRESENCE_MAX_LIFETIME, None)
    assert expires == NOW + timedelta(minutes=60) - EXPIRY_MARGIN
    assert timedelta(minutes=1) <= EXPIRY_MARGIN


def test_the_expiry_is_on_graphs_clock() -> None:
    # Graph's Date header 10 minutes behind ours: ask for 58 minutes from Graph's now.
    graph_now = NOW - timedelta(minutes=10)
    expires = expiry_for(NOW, PRESENCE_MAX_LIFETIME, -600.0)
    assert expires - graph_now == PRESENCE_MAX_LIFETIME - EXPIRY_MARGIN


def test_graphs_refusal_of_an_expiry_is_told_apart_from_other_bad_requests() -> None:
    too_far = graph_error(400, "ExtensionError", "Subscription expiration can only be 60 "
                          "minutes in the future.", request_id=None, retry_after=None)
    assert isinstance(too_far, BadRequest) and expiry_refused(too_far)
    other = graph_error(400, "InvalidRequest", "Unsupported resource.", request_id=None,
                        retry_after=None)
    assert not expiry_refused(other)
    gone = graph_error(404, "ResourceNotFound", "expiration", request_id=None,
                       retry_after=None)
    assert not expiry_refused(gone)
