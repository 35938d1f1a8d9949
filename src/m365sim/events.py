"""Changes to resources, published by the services and consumed by subscriptions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ResourceChange:
    """One change Graph would notify about.

    `resource` is the path a subscription names (e.g. `communications/presences/{id}`,
    `users/{id}`, `users/{id}/events`); `resource_data` is the full resource as a rich
    notification would carry it; `odata_type`/`odata_id` go into `resourceData`.
    """

    tenant_id: str
    resource: str
    change_type: str
    resource_id: str
    odata_type: str
    odata_id: str
    resource_data: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[ResourceChange], None]


class ChangeBus:
    """Synchronous fan-out of ResourceChanges to listeners (the subscription service)."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        """Call `listener` for every change from now on."""
        self._listeners.append(listener)

    def publish(self, change: ResourceChange) -> None:
        """Hand a change to every listener."""
        for listener in self._listeners:
            listener(change)
