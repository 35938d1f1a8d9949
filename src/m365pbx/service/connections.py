"""PBX connections from the configuration, and the pump from their events into the hub."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from m365pbx.clock import Clock
from m365pbx.config import AsteriskConnection as AsteriskConnectionConfig
from m365pbx.config import PbxConnection as ConnectionConfig
from m365pbx.core.policy import LineReading, PbxReading
from m365pbx.pbx.base import LineStateEvent, PbxConnection, PbxPresenceEvent
from m365pbx.store import Store
from m365pbx.sync.hub import PresenceHub

if TYPE_CHECKING:
    from m365pbx.pbx.asterisk import AsteriskConnection
    from m365pbx.service.leases import Ownership

log = logging.getLogger(__name__)


def build_connection(
    config: ConnectionConfig, clock: Clock, store: Store | None = None,
    ownership: Ownership | None = None,
) -> PbxConnection:
    """The PBX connection a configuration entry describes.

    With a store, a SIP connection keeps its publications there across restarts, and an API
    connection the users its clients uploaded. With `ownership` (several nodes: its tenant's
    lease) a SIP connection publishes only while this node holds it (service/pbx_leases.py).
    """
    if config.kind == "api":
        if store is not None:
            from m365pbx.service.api_directory import StoredApiConnection

            return StoredApiConnection(config.name, store, clock)
        from m365pbx.pbx.api.connection import ApiConnection

        return ApiConnection(config.name, clock=clock)
    if config.kind == "sip":
        from m365pbx.config import SipConnection as SipConfig
        from m365pbx.pbx.sip.connection import SipConnection
        from m365pbx.pbx.sip.options import SipOptions

        assert isinstance(config, SipConfig)
        options = SipOptions.from_settings(config.settings)
        if store is not None and ownership is not None:
            from m365pbx.service.pbx_leases import LeasedSipConnection

            return LeasedSipConnection(config.name, options, store, clock, ownership)
        if store is not None:
            from m365pbx.service.publication_store import StoredSipConnection

            return StoredSipConnection(config.name, options, store, clock)
        return SipConnection(config.name, options, now=clock.now)
    if config.kind == "asterisk":
        assert isinstance(config, AsteriskConnectionConfig)
        return asterisk_connection(config, clock)
    # Unreachable through the configuration, whose models allow only the kinds above.
    raise ValueError(f"PBX connection {config.name}: unknown kind {config.kind!r}")


def asterisk_connection(config: AsteriskConnectionConfig, clock: Clock) -> AsteriskConnection:
    """The AMI connection an `asterisk` configuration entry describes."""
    from m365pbx.pbx.asterisk import AmiOptions, AsteriskConnection, AsteriskOptions, tls_context

    settings = config.settings
    ami = AmiOptions(
        host=settings.host, port=settings.port, username=settings.username,
        secret=settings.secret.get_secret_value(),
        tls=tls_context(settings.ca_file) if settings.tls else None,
        keepalive=settings.keepalive_interval.total_seconds())
    options = AsteriskOptions(
        ami, extension_field=settings.extension_field, line_device=settings.line_device,
        custom_device=settings.custom_device, presence_provider=settings.presence_provider,
        dnd_family=settings.dnd_family,
        dnd_poll_interval=settings.dnd_poll_interval.total_seconds())
    return AsteriskConnection(config.name, options, now=clock.now)


def _seconds(at: datetime) -> float:
    return at.timestamp()


async def pump_events(name: str, connection: PbxConnection, hub: PresenceHub) -> None:
    """Feed a connection's line-state and PBX-presence events into the hub, in order."""
    async for event in connection.events():
        if isinstance(event, LineStateEvent):
            hub.line_state(name, event.key,
                           LineReading(event.state, _seconds(event.at), event.sequence))
        elif isinstance(event, PbxPresenceEvent):
            hub.pbx_presence(name, event.key,
                             PbxReading(event.presence, _seconds(event.at), event.note,
                                        event.sequence))
