"""The settings of one installation: top-level sections and the Settings root model."""

from __future__ import annotations

import os
import re
import socket
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    HttpUrl,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from m365pbx.config.connections import PbxConnection
from m365pbx.config.durations import Duration
from m365pbx.config.fields import MODEL_CONFIG, Slug
from m365pbx.config.references import REFERENCE_ERROR_TYPE, reference_problems
from m365pbx.config.secrets import resolve_reference
from m365pbx.config.tenants import Tenant
from m365pbx.core.presence import (
    Activity,
    Availability,
    UnknownValueFallback,
    lookup_activity,
    lookup_availability,
)

ENV_PREFIX = "M365PBX_"
ENV_NESTED_DELIMITER = "__"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/m365pbx.db"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class Database(BaseModel):
    """Where m365pbx keeps its state."""

    model_config = MODEL_CONFIG

    url: Annotated[str, BeforeValidator(resolve_reference)] = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        # The store decides which databases it supports; imported late so that loading the
        # configuration does not pull in SQLAlchemy's async engine.
        from m365pbx.store.db import parse_database_url
        from m365pbx.store.errors import DatabaseUrlError

        try:
            parse_database_url(value)
        except DatabaseUrlError as exc:
            raise ValueError(str(exc)) from None
        return value


_NODE_ID = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$"


class ClusterConfig(BaseModel):
    """Several m365pbx nodes sharing one PostgreSQL database (docs/cluster.md)."""

    model_config = MODEL_CONFIG

    enabled: bool = Field(
        default=False, description="this node is one of several sharing the database")
    node_id: str | None = Field(
        default=None,
        description="this node's name in leases and statuses; default host name and pid")
    lease_lifetime: Duration = Field(
        default=timedelta(seconds=30),
        description="how long a job stays with a node that stopped renewing its lease")
    handoff_lifetime: Duration = Field(
        default=timedelta(minutes=2),
        description="how long webhook notifications and presence API events handed to the "
                    "node running their tenant wait for it; then notifications are replaced "
                    "by reading the people back, events dropped")
    transport: Literal["database", "nats"] = Field(
        default="database",
        description="how webhook notifications reach the node running their tenant: "
                    "'database' (a table and NOTIFY) or 'nats' (NATS JetStream)")
    nats_url: Annotated[str, BeforeValidator(resolve_reference)] = Field(
        default="nats://127.0.0.1:4222",
        description="the NATS server with JetStream for cluster.transport 'nats'; a "
                    "secret reference when the URL carries credentials")
    nats_prefix: Slug = Field(
        default="m365pbx",
        description="names of this installation's JetStream streams and subjects "
                    "(`<prefix>.handoff.<tenant>`); distinct per installation on one server")

    @field_validator("node_id")
    @classmethod
    def _node_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(_NODE_ID, value):
            raise ValueError("a node id is up to 200 letters, digits and . _ : @ -, without "
                             "spaces, starting with a letter or digit (e.g. gw-2)")
        return value

    @field_validator("nats_url")
    @classmethod
    def _nats_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise ValueError("a NATS server is written nats://host:4222 (tls://host:4222 "
                             "for TLS; nats://user:password@host:4222 with credentials)")
        return value.strip()

    @field_validator("lease_lifetime")
    @classmethod
    def _long_enough(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=3):
            raise ValueError("a lease lifetime under 3s would be renewed more often than a "
                             "busy database answers; use 30s unless you know better")
        return value

    def node(self) -> str:
        """This node's id: `node_id`, or the host name and process id (unique per process)."""
        if self.node_id:
            return self.node_id
        return f"{socket.gethostname() or 'm365pbx'}-{os.getpid()}"


class Listen(BaseModel):
    """The address the web server (webhooks, API, admin UI) listens on."""

    model_config = MODEL_CONFIG

    host: str = Field(default="127.0.0.1", description="address to listen on; 0.0.0.0 for all")
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port; 0 picks a free one")


class AdminConfig(BaseModel):
    """The admin UI under /admin (off unless enabled)."""

    model_config = MODEL_CONFIG

    enabled: bool = Field(default=False, description="serve the admin UI under /admin")


class SecretsConfig(BaseModel):
    """Where the key that encrypts secrets in the database comes from."""

    model_config = MODEL_CONFIG

    key_file: Path = Field(
        default=Path("var/secret.key"),
        description="Fernet key file, used when M365PBX_SECRET_KEY is not set",
    )


class LogFormat(StrEnum):
    """How log lines are written."""

    CONSOLE = "console"
    JSON = "json"


class LoggingConfig(BaseModel):
    """Log level and format."""

    model_config = MODEL_CONFIG

    level: str = Field(default="INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL")
    format: LogFormat = Field(default=LogFormat.CONSOLE, description="'console' or 'json'")

    @field_validator("level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        upper = value.strip().upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return upper


def _availability(value: object) -> object:
    if isinstance(value, str) and (found := lookup_availability(value)) is not None:
        return found
    raise ValueError(
        "expected a Teams availability: " + ", ".join(item.value for item in Availability)
    )


def _activity(value: object) -> object:
    if isinstance(value, str) and (found := lookup_activity(value)) is not None:
        return found
    raise ValueError("expected a Teams activity: " + ", ".join(item.value for item in Activity))


class PresenceConfig(BaseModel):
    """What a Teams presence value that m365pbx does not know is treated as."""

    model_config = MODEL_CONFIG

    unknown_availability: Annotated[Availability, BeforeValidator(_availability)] = Field(
        default=Availability.PRESENCE_UNKNOWN, description="fallback for an unknown availability"
    )
    unknown_activity: Annotated[Activity, BeforeValidator(_activity)] = Field(
        default=Activity.PRESENCE_UNKNOWN, description="fallback for an unknown activity"
    )

    def fallback(self) -> UnknownValueFallback:
        """Return the fallback in the form core.presence.parse_teams_presence takes."""
        return UnknownValueFallback(self.unknown_availability, self.unknown_activity)


class SyncMode(StrEnum):
    """How Teams presence reaches m365pbx."""

    AUTO = "auto"  # webhooks with reconciliation when public_url is set, else polling
    WEBHOOK = "webhook"
    POLLING = "polling"


class MicrosoftEndpoints(BaseModel):
    """Where Entra ID and Graph are; changed only for national clouds or the simulator."""

    model_config = MODEL_CONFIG

    login_url: HttpUrl = Field(
        default=HttpUrl("https://login.microsoftonline.com"), description="Entra ID sign-in host"
    )
    graph_url: HttpUrl = Field(
        default=HttpUrl("https://graph.microsoft.com"), description="Microsoft Graph host"
    )
    ca_file: Path | None = Field(
        default=None, description="extra CA bundle to trust for both (e.g. a TLS proxy)"
    )
    proxy: str | None = Field(
        default=None, description="HTTP proxy for sign-in and Graph alike (else HTTPS_PROXY)"
    )

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip() if "://" in value else f"http://{value.strip()}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PydanticCustomError(
                "proxy_url", "a proxy is written http://host:port (or https://host:port)")
        return parts.geturl()


class TeamsToPbxConfig(BaseModel):
    """Tuning of the Teams → PBX direction."""

    model_config = MODEL_CONFIG

    mode: SyncMode = Field(default=SyncMode.AUTO, description="auto, webhook or polling")
    reconcile_interval: Duration = Field(
        default=timedelta(minutes=5), description="slow poll that repairs lost notifications"
    )
    min_poll_interval: Duration = Field(
        default=timedelta(seconds=1), description="fastest polling round in polling mode"
    )
    rich_notifications: bool = Field(
        default=True, description="ask Graph to include (encrypted) presence in notifications"
    )


class Settings(BaseSettings):
    """Everything one installation declares; build it with `load_config`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
    )

    database: Database = Field(default_factory=Database, description="the state database")
    cluster: ClusterConfig = Field(
        default_factory=ClusterConfig, description="several nodes on one PostgreSQL database")
    listen: Listen = Field(default_factory=Listen, description="web server address")
    public_url: HttpUrl | None = Field(
        default=None,
        description="public HTTPS base URL for Graph webhooks; without it m365pbx polls",
    )
    webhook_path: str = Field(
        default="/graph/notifications", description="path of the Graph webhook endpoint"
    )
    secrets: SecretsConfig = Field(default_factory=SecretsConfig, description="secret key")
    admin: AdminConfig = Field(default_factory=AdminConfig, description="the admin UI")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="logging")
    presence: PresenceConfig = Field(
        default_factory=PresenceConfig, description="fallbacks for unknown Teams values"
    )
    microsoft: MicrosoftEndpoints = Field(
        default_factory=MicrosoftEndpoints, description="Entra ID and Graph endpoints"
    )
    teams_to_pbx: TeamsToPbxConfig = Field(
        default_factory=TeamsToPbxConfig, description="Teams → PBX tuning"
    )
    tenants: list[Tenant] = Field(default_factory=list, description="Entra ID tenants")
    pbx_connections: list[PbxConnection] = Field(
        default_factory=list, description="PBX adapter instances"
    )

    _source_file: Path | None = PrivateAttr(default=None)
    _warnings: list[str] = PrivateAttr(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Take values only as given: load_config merges the file and the environment first."""
        return (init_settings,)

    @field_validator("public_url", mode="before")
    @classmethod
    def _empty_url_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("public_url")
    @classmethod
    def _https_only(cls, value: HttpUrl | None) -> HttpUrl | None:
        if value is None or value.scheme == "https":
            return value
        if value.host in _LOOPBACK_HOSTS or value.host == "[::1]":
            return value  # plain HTTP on loopback is for tests and the simulator
        raise ValueError("Graph delivers notifications only to https:// URLs")

    @field_validator("webhook_path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        parts = urlsplit(value)
        if not value.startswith("/") or parts.query or parts.fragment or " " in value:
            raise ValueError("expected a URL path that starts with /, e.g. /graph/notifications")
        return value

    @model_validator(mode="after")
    def _check_references(self) -> Settings:
        problems = reference_problems(self.model_dump(
            include={"tenants", "pbx_connections", "public_url", "teams_to_pbx", "cluster",
                     "database"}))
        if problems:
            raise PydanticCustomError(
                REFERENCE_ERROR_TYPE,
                "{summary}",
                {"summary": "; ".join(message for _, message in problems), "problems": problems},
            )
        return self

    @property
    def source_file(self) -> Path | None:
        """The YAML file these settings were read from, or None for defaults only."""
        return self._source_file

    @property
    def warnings(self) -> list[str]:
        """Things that do not stop m365pbx from starting but are probably mistakes."""
        return list(self._warnings)

    @property
    def webhook_url(self) -> str | None:
        """The full webhook URL Graph should call, or None when m365pbx polls."""
        if self.public_url is None:
            return None
        return str(self.public_url).rstrip("/") + self.webhook_path

    def tenant(self, name: str) -> Tenant:
        """Return the tenant with this name; KeyError if none is declared."""
        for tenant in self.tenants:
            if tenant.name == name:
                return tenant
        raise KeyError(name)

    def redacted(self) -> dict[str, Any]:
        """Return the settings as plain data for printing, with every secret as ********."""
        from m365pbx.config.redact import redact_settings

        return redact_settings(self)
