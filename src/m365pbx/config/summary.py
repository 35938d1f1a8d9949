"""A short, secret-free description of the settings for `m365pbx config check`."""

from __future__ import annotations

from dataclasses import dataclass

from m365pbx.config.connections import AsteriskConnection, SipConnection
from m365pbx.config.models import Settings
from m365pbx.config.redact import mask_url_password


@dataclass(frozen=True, slots=True)
class Counts:
    """How many objects of each kind the settings declare."""

    tenants: int
    credentials: int
    service_accounts: int
    pbx_connections: int

    def __str__(self) -> str:
        return ", ".join(
            _plural(count, noun)
            for count, noun in (
                (self.tenants, "tenant"),
                (self.credentials, "credential"),
                (self.service_accounts, "service account"),
                (self.pbx_connections, "PBX connection"),
            )
        )


def count(settings: Settings) -> Counts:
    """Count the declared tenants, credentials, service accounts and PBX connections."""
    return Counts(
        tenants=len(settings.tenants),
        credentials=sum(len(tenant.credentials) for tenant in settings.tenants),
        service_accounts=sum(len(tenant.service_accounts) for tenant in settings.tenants),
        pbx_connections=len(settings.pbx_connections),
    )


def describe(settings: Settings) -> list[str]:
    """Return one line per declared object and per installation setting (no secrets)."""
    lines = [f"database: {mask_url_password(settings.database.url)}"]
    lines.append(f"listen: {settings.listen.host}:{settings.listen.port}")
    webhook = settings.webhook_url
    lines.append(
        f"presence updates: webhooks at {webhook}" if webhook
        else "presence updates: polling (no public_url)"
    )
    for tenant in settings.tenants:
        lines.append(f"tenant {tenant.name} ({tenant.tenant_id})")
        for credential in tenant.credentials:
            how = "certificate" if credential.uses_certificate else "client secret"
            rights = ", ".join(permission.value for permission in credential.permissions)
            lines.append(f"  credential {credential.name}: {how}; {rights}")
        for account in tenant.service_accounts:
            lines.append(
                f"  service account {account.upn}: {account.sign_in.value} "
                f"via {account.credential}"
            )
        if tenant.mapping:
            lines.append("  mapping overrides: yes")
    for connection in settings.pbx_connections:
        detail = ""
        if isinstance(connection, SipConnection):
            sip = connection.settings
            detail = f", {sip.transport.value} {sip.host}:{sip.port}, domain {sip.domain}"
        elif isinstance(connection, AsteriskConnection):
            detail = f", AMI {connection.settings.host}:{connection.settings.port}"
        push = "on" if connection.push_line_state_to_teams else "off"
        note = "on" if connection.push_pbx_note_to_teams else "off"
        others = (f"; other switches for {_plural(len(connection.per_person), 'group')} of "
                  "people" if connection.per_person else "")
        lines.append(
            f"connection {connection.name}: {connection.kind} for tenant {connection.tenant}"
            f"{detail}; line state to Teams {push}; PBX note to Teams {note}{others}"
        )
    return lines


def _plural(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")
