"""Tenants and what belongs to them: credentials, service accounts, directory options."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from m365pbx.config.durations import Duration
from m365pbx.config.fields import MODEL_CONFIG, Guid, Slug, TenantId, Upn
from m365pbx.config.mapping import MappingDocument
from m365pbx.config.secrets import Secret
from m365pbx.core.credentials import Permission, SignInMethod


class Credential(BaseModel):
    """An app registration: client id plus a client secret or a certificate."""

    model_config = MODEL_CONFIG

    name: Slug = Field(description="name the service accounts use to refer to this credential")
    client_id: Guid = Field(description="application (client) id of the app registration")
    client_secret: Secret | None = Field(
        default=None, description="client secret value (not its id); or use certificate_file"
    )
    certificate_file: Path | None = Field(
        default=None, description="PEM file with the certificate and its private key"
    )
    certificate_password: Secret | None = Field(
        default=None, description="password of the certificate's private key, if it has one"
    )
    permissions: list[Permission] = Field(
        min_length=1, description="what the app registration has been granted"
    )

    @field_validator("permissions")
    @classmethod
    def _drop_repeats(cls, value: list[Permission]) -> list[Permission]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _one_kind_of_credential(self) -> Credential:
        if (self.client_secret is None) == (self.certificate_file is None):
            raise ValueError("give exactly one of client_secret or certificate_file")
        if self.certificate_password is not None and self.certificate_file is None:
            raise ValueError("certificate_password is only used together with certificate_file")
        return self

    @property
    def uses_certificate(self) -> bool:
        """Whether this credential signs in with a certificate rather than a client secret."""
        return self.certificate_file is not None


class ServiceAccount(BaseModel):
    """A licensed Teams user whose delegated token owns presence subscriptions."""

    model_config = MODEL_CONFIG

    upn: Upn = Field(description="user principal name of the account, e.g. presence@contoso.com")
    credential: str = Field(description="name of a credential of the same tenant")
    sign_in: SignInMethod = Field(description="'password' or 'device_code'")
    password: Secret | None = Field(
        default=None,
        validate_default=True,
        description="the account's password; only with sign_in: password",
    )

    @field_validator("password")
    @classmethod
    def _password_iff_password_sign_in(cls, value: Any, info: ValidationInfo) -> Any:
        sign_in = info.data.get("sign_in")
        if sign_in is SignInMethod.PASSWORD and value is None:
            raise ValueError("required when sign_in is 'password'")
        if sign_in is SignInMethod.DEVICE_CODE and value is not None:
            raise ValueError(
                "not used when sign_in is 'device_code' (the account signs in once in a "
                "browser and m365pbx keeps its refresh token); remove it"
            )
        return value


class Directory(BaseModel):
    """Which Entra ID users take part, and how often the full directory is read again."""

    model_config = MODEL_CONFIG

    group_ids: list[Guid] = Field(
        default_factory=list, description="only members of these groups (object ids); empty: all"
    )
    require_teams_licence: bool = Field(
        default=True, description="leave out users without an enabled Teams licence"
    )
    full_sync_interval: Duration = Field(
        default=timedelta(hours=1),
        description="how often the whole directory is read again",
    )
    follow_changes: bool = Field(
        default=True,
        description="ask Graph what changed (/users/delta) between full syncs, so people "
        "added, removed, disabled or (un)licensed show within a minute",
    )
    changes_interval: Duration = Field(
        default=timedelta(seconds=30),
        description="how often Graph is asked what changed in the directory",
    )


class Tenant(BaseModel):
    """One Entra ID tenant with its credentials, service accounts and options."""

    model_config = MODEL_CONFIG

    name: Slug = Field(description="short unique name of the tenant, e.g. 'contoso'")
    tenant_id: TenantId = Field(
        description="directory (tenant) id GUID, or a verified domain like contoso.onmicrosoft.com"
    )
    credentials: list[Credential] = Field(
        min_length=1, description="app registrations of this tenant"
    )
    service_accounts: list[ServiceAccount] = Field(
        default_factory=list, description="delegated accounts that own presence subscriptions"
    )
    mapping: MappingDocument = Field(
        default=None, description="mapping overrides for this tenant (teams_to_pbx, pbx_to_teams)"
    )
    directory: Directory = Field(
        default_factory=Directory, description="directory filters and sync interval"
    )

    def credential(self, name: str) -> Credential:
        """Return the credential with this name; KeyError if the tenant has none."""
        for credential in self.credentials:
            if credential.name == name:
                return credential
        raise KeyError(name)
