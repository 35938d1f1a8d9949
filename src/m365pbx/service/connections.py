"""PBX connections from the configuration, and the pump from their events into the hub."""

from __future__ import annotations

import logging
from datetime import datetime

from m365pbx.clock import Clock
from m365pbx.config import PbxConnection as ConnectionConfig
from m365pbx.core.policy import LineReading, PbxReading
from m365pbx.pbx.base import LineStateEvent, PbxConnection, PbxPresenceEvent
from m365pbx.store import Store
from m365pbx.sync.hub import PresenceHub

log = logging.getLogger(__name__)


def build_connection(
    config: ConnectionConfig, clock: Clock, store: Store | None = None
) -> PbxConnection | None:
    """The PBX connection a configuration entry describes (None: kind not available yet).

    With a store, a SIP connection keeps its publications there across restarts, and an API
    connection the users its clients uploaded.
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
        if store is not None:
            from m365pbx.service.publication_store import StoredSipConnection

            return StoredSipConnection(config.name, options, store, clock)
        return SipConnection(config.name, options, now=clock.now)
    log.error("PBX connection %s: kind %r is not supported yet", config.name, config.kind)
    return None


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
