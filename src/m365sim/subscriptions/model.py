"""A subscription as the simulator keeps it, and its Graph JSON (types/subscription.json)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from m365sim.subscriptions.crypto import EncryptionCertificate
from m365sim.subscriptions.resources import Kind, Target

# What Graph reports for webhook deliveries (observed in list answers; the docs example
# shows "application/json").
NOTIFICATION_CONTENT_TYPE = "application/json"


def graph_instant(when: datetime) -> str:
    """A DateTimeOffset as Graph writes it: seven fractional digits and `Z`."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond:06d}0Z"


def parse_instant(value: str) -> datetime:
    """An ISO-8601 date and time; without an offset it is UTC (graph.md 4.1). ValueError."""
    text = value.strip()
    if "T" not in text.upper():
        raise ValueError("a date and time is needed")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    when = datetime.fromisoformat(text)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


@dataclass(slots=True)
class Subscription:
    """One change-notification subscription."""

    id: str
    tenant_id: str
    app_id: str
    creator_id: str
    # The signed-in user of a delegated subscription; None for application ones.
    user_id: str | None
    resource: str
    target: Target
    change_type: str
    change_types: frozenset[str]
    notification_url: str
    lifecycle_url: str | None
    expiration: datetime
    client_state: str | None
    include_resource_data: bool
    certificate: EncryptionCertificate | None
    certificate_text: str | None
    certificate_id: str | None
    tls_version: str
    created_at: datetime
    # When the token that last authorized it (create, renew, reauthorize) runs out, capped
    # by the expiry; reauthorizationRequired is sent before it (graph.md 4.6).
    authorized_until: datetime
    challenged: bool = False
    # Bumped whenever the lifecycle timers are rescheduled, so stale ones do nothing.
    timer_generation: int = 0

    @property
    def kind(self) -> Kind:
        """What the subscription watches."""
        return self.target.kind

    def live(self, now: datetime) -> bool:
        """Whether it has not expired."""
        return self.expiration > now

    def paused(self, now: datetime) -> bool:
        """An ignored reauthorizationRequired pauses delivery (graph.md 4.6; timing chosen)."""
        return self.challenged and now >= self.authorized_until

    def graph_json(self, *, include_client_state: bool) -> dict[str, Any]:
        """The subscription resource as Graph answers it."""
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": self.change_type,
            "clientState": self.client_state if include_client_state else None,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": graph_instant(self.expiration),
            "creatorId": self.creator_id,
            "includeResourceData": self.include_resource_data,
            "latestSupportedTlsVersion": self.tls_version,
            "encryptionCertificate": self.certificate_text,
            "encryptionCertificateId": self.certificate_id,
            "notificationUrlAppId": None,
            "notificationContentType": NOTIFICATION_CONTENT_TYPE,
        }

    def control_json(self, now: datetime) -> dict[str, Any]:
        """Everything the simulator knows, for `GET /_sim/subscriptions`."""
        body = self.graph_json(include_client_state=True)
        body.pop("encryptionCertificate")
        body.update({
            "tenantId": self.tenant_id,
            "userId": self.user_id,
            "kind": self.kind.value,
            "userIds": sorted(self.target.user_ids) if self.target.user_ids else None,
            "createdDateTime": graph_instant(self.created_at),
            "authorizedUntil": graph_instant(self.authorized_until),
            "reauthorizationRequested": self.challenged,
            "paused": self.paused(now),
            "encryptionCertificateThumbprint": (self.certificate.thumbprint
                                                if self.certificate else None),
        })
        return body
