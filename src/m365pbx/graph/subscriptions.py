"""Change-notification subscriptions: create, renew, delete, list (graph.md 4.1–4.4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from m365pbx.graph.certificates import NotificationCertificate
from m365pbx.graph.client import GraphClient
from m365pbx.graph.errors import BadRequest, GraphError

# Presence subscriptions live at most 60 minutes; users' at most 41,760 (graph.md 4.3).
PRESENCE_MAX_LIFETIME = timedelta(minutes=60)
USERS_MAX_LIFETIME = timedelta(minutes=41_760)
MAX_PRESENCE_IDS = 650
# Graph checks an expiry against its own clock and refuses one past the maximum
# ("Subscription expiration can only be 60 minutes in the future"), so we ask for a little
# less, in Graph's time: ours plus the skew measured from its Date header.
EXPIRY_MARGIN = timedelta(minutes=2)


@dataclass(frozen=True)
class Subscription:
    """A subscription as Graph returned it."""

    id: str
    resource: str
    expires: datetime
    change_type: str = "updated"
    notification_url: str = ""
    creator_id: str = ""
    application_id: str = ""


@dataclass(frozen=True)
class SubscriptionRequest:
    """What to ask Graph for; `client_state` is our secret echoed in every notification."""

    resource: str
    notification_url: str
    expires: datetime
    client_state: str = field(repr=False)
    change_type: str = "updated"
    lifecycle_url: str | None = None
    certificate: NotificationCertificate | None = None


def presence_resource(user_ids: Sequence[str]) -> str:
    """The resource for up to 650 people's presence in one subscription."""
    if not 0 < len(user_ids) <= MAX_PRESENCE_IDS:
        raise ValueError(f"a presence subscription covers 1 to {MAX_PRESENCE_IDS} people")
    if len(user_ids) == 1:
        return f"/communications/presences/{user_ids[0]}"
    quoted = ",".join(f"'{user_id}'" for user_id in user_ids)
    return f"/communications/presences?$filter=id in ({quoted})"


def expiry_for(now: datetime, lifetime: timedelta, clock_skew: float | None) -> datetime:
    """The expiry to ask for: `lifetime` from now on Graph's clock, less EXPIRY_MARGIN."""
    return now + timedelta(seconds=clock_skew or 0.0) + lifetime - EXPIRY_MARGIN


def expiry_refused(error: GraphError) -> bool:
    """Whether Graph refused a subscription's expiry as too far ahead (or in the past)."""
    return isinstance(error, BadRequest) and "expiration" in error.message.lower()


def graph_time(value: datetime) -> str:
    """UTC ISO-8601 with Z, as subscriptions take it."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_subscription(data: dict[str, Any]) -> Subscription:
    """A Subscription from Graph's JSON."""
    expires = datetime.fromisoformat(str(data["expirationDateTime"]).replace("Z", "+00:00"))
    return Subscription(
        id=str(data["id"]),
        resource=str(data.get("resource", "")),
        expires=expires,
        change_type=str(data.get("changeType", "")),
        notification_url=str(data.get("notificationUrl", "")),
        creator_id=str(data.get("creatorId") or ""),
        application_id=str(data.get("applicationId") or ""),
    )


async def create_subscription(client: GraphClient, request: SubscriptionRequest) -> Subscription:
    """Create a subscription (Graph validates the notification URL before answering)."""
    body: dict[str, Any] = {
        "changeType": request.change_type,
        "notificationUrl": request.notification_url,
        "resource": request.resource,
        "expirationDateTime": graph_time(request.expires),
        "clientState": request.client_state,
    }
    if request.lifecycle_url:
        body["lifecycleNotificationUrl"] = request.lifecycle_url
    if request.certificate is not None:
        body["includeResourceData"] = True
        body["encryptionCertificate"] = request.certificate.base64_der
        body["encryptionCertificateId"] = request.certificate.id
    answer = await client.post_json("/v1.0/subscriptions", body)
    return parse_subscription(answer or {})


async def renew_subscription(client: GraphClient, subscription_id: str,
                             expires: datetime) -> Subscription:
    """Extend a subscription's expiry (404 once it has expired: create it again)."""
    response = await client.request("PATCH", f"/v1.0/subscriptions/{subscription_id}",
                                    json_body={"expirationDateTime": graph_time(expires)})
    data = response.json()
    return parse_subscription(data if isinstance(data, dict) else {})


async def delete_subscription(client: GraphClient, subscription_id: str) -> None:
    """Delete a subscription."""
    await client.request("DELETE", f"/v1.0/subscriptions/{subscription_id}")


async def reauthorize_subscription(client: GraphClient, subscription_id: str) -> None:
    """Answer a reauthorizationRequired lifecycle event."""
    await client.request("POST", f"/v1.0/subscriptions/{subscription_id}/reauthorize")


async def list_subscriptions(client: GraphClient) -> list[Subscription]:
    """Subscriptions this app (and, delegated, this user) owns."""
    found: list[Subscription] = []
    async for page in client.pages("/v1.0/subscriptions"):
        found += [parse_subscription(s) for s in page.get("value", []) if isinstance(s, dict)]
    return found
