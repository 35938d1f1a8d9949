"""Everything a SipConnection can be told, with defaults, built from the config's SipSettings."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from m365pbx.config.connections import SipSettings
from m365pbx.pbx.sip.addressing import (
    AccountPolicy,
    Addressing,
    GatewayAccount,
    PersonalAccounts,
)
from m365pbx.pbx.sip.limits import TcpLimits
from m365pbx.pbx.sip.retry import Backoff
from m365pbx.pbx.sip.transactions import Timers


@dataclass(frozen=True, slots=True)
class SipOptions:
    """Settings of one SIP presence connection (times in seconds)."""

    server: tuple[str, int]
    addressing: Addressing
    transport: Literal["udp", "tcp"] = "udp"
    accounts: AccountPolicy = None
    # 10 minutes: a publication orphaned by a crash of m365pbx (its ETag lost) lingers at
    # most this long, and a server that lost its state unnoticed is found within 80% of it.
    publish_expires: int = 600
    subscribe_expires: int = 600
    refresh_margin: float = 30.0
    watch_line_state: bool = True
    watch_presence: bool = False
    keepalive_interval: float = 30.0
    keepalive_timeout: float = 5.0
    request_timeout: float | None = None
    max_in_flight: int = 64
    stop_timeout: float = 5.0
    event_queue_size: int = 10_000
    timers: Timers = field(default_factory=Timers)
    backoff: Backoff = field(default_factory=Backoff)
    local_host: str | None = None
    local_port: int = 0
    user_agent: str = "m365pbx"
    tcp_limits: TcpLimits = field(default_factory=TcpLimits)

    @classmethod
    def from_settings(cls, settings: SipSettings, **overrides: Any) -> SipOptions:
        """Options from a configured connection's settings; keyword arguments override."""
        accounts: AccountPolicy = None
        if settings.username is not None:
            password = (
                settings.password.get_secret_value() if settings.password is not None else None
            )
            accounts = GatewayAccount(settings.username, password)
        elif settings.personal_accounts is not None:
            personal = settings.personal_accounts
            accounts = PersonalAccounts(personal.username_template,
                                        "{" + personal.password_field + "}")
        options = cls(
            server=(settings.host, settings.port),
            addressing=Addressing(settings.domain, settings.uri_template, settings.uri_field),
            transport=settings.transport.value,
            accounts=accounts,
            publish_expires=int(settings.publish_expires.total_seconds()),
            subscribe_expires=int(settings.subscribe_expires.total_seconds()),
            watch_line_state=settings.watch_line_state,
            watch_presence=settings.watch_presence,
            local_port=settings.listen_port,
        )
        return replace(options, **overrides)
