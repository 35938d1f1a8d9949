"""The items of a changeNotificationCollection (graph.md 4.5, 4.6; fixtures notification-*.json,
lifecycle-reauthorization-required.json)."""

from __future__ import annotations

from typing import Any

from m365sim.events import ResourceChange
from m365sim.subscriptions.crypto import encrypt_content
from m365sim.subscriptions.model import Subscription, graph_instant
from m365sim.subscriptions.resources import Kind

LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")


def change_item(subscription: Subscription, change: ResourceChange) -> dict[str, Any]:
    """One change notification: ids only, plus encryptedContent for rich subscriptions."""
    resource_data: dict[str, Any] = {
        "@odata.type": change.odata_type,
        "@odata.id": change.odata_id,
    }
    etag = change.resource_data.get("@odata.etag")
    if etag is not None:
        # Outlook notifications carry the item's etag (notification-message.json).
        resource_data["@odata.etag"] = etag
    resource_data["id"] = change.resource_id
    item: dict[str, Any] = {
        "subscriptionId": subscription.id,
        "subscriptionExpirationDateTime": graph_instant(subscription.expiration),
        "changeType": change.change_type,
        "resource": change.resource,
        "resourceData": resource_data,
    }
    if subscription.client_state is not None:
        item["clientState"] = subscription.client_state
    item["tenantId"] = subscription.tenant_id
    if subscription.kind is Kind.PRESENCE:
        # The presence examples carry organizationId too (changenotifications-for-presence.md).
        item["organizationId"] = subscription.tenant_id
    if subscription.include_resource_data and subscription.certificate is not None:
        content = change.resource_data or {"@odata.type": change.odata_type,
                                           "@odata.id": change.odata_id,
                                           "id": change.resource_id}
        item["encryptedContent"] = encrypt_content(content, subscription.certificate,
                                                   subscription.certificate_id or "")
    return item


def lifecycle_item(subscription: Subscription, event: str) -> dict[str, Any]:
    """One lifecycle notification (no resource information)."""
    item: dict[str, Any] = {
        "subscriptionId": subscription.id,
        "subscriptionExpirationDateTime": graph_instant(subscription.expiration),
        "tenantId": subscription.tenant_id,
    }
    if subscription.client_state is not None:
        item["clientState"] = subscription.client_state
    item["lifecycleEvent"] = event
    return item
