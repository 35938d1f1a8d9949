"""Turn what the configuration file declares into the store's declared objects.

The file's tenants, credentials, service accounts and PBX connections are written into the
store at start and marked as managed by the file (docs/architecture.md, "Configuration and
state"); this module is the translation between the two models.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from m365pbx.config import Credential, PbxConnection, Settings, Tenant
from m365pbx.errors import UserInputError
from m365pbx.store import (
    CredentialKind,
    CredentialSpec,
    Declarations,
    PbxConnectionSpec,
    ServiceAccountSpec,
    TenantSpec,
)

# Keys of a connection's settings that hold secrets: stored encrypted, apart from the rest.
SECRET_SETTING_KEYS = frozenset({"password", "secret"})


def certificate_sha1(pem: bytes, *, source: str) -> bytes:
    """The SHA-1 digest of the first certificate in a PEM file (Entra's thumbprint)."""
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise UserInputError("no PEM certificate found in the file", source=source) from None
    return hashlib.sha1(certificate.public_bytes(Encoding.DER)).digest()  # noqa: S324


def certificate_thumbprint(pem: bytes, *, source: str) -> str:
    """The base64url SHA-1 thumbprint (`x5t`, as Entra names certificates) of a PEM file."""
    digest = certificate_sha1(pem, source=source)
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _credential_spec(tenant: Tenant, credential: Credential) -> CredentialSpec:
    common: dict[str, Any] = {
        "name": credential.name,
        "tenant": tenant.name,
        "client_id": str(credential.client_id),
        "permissions": list(credential.permissions),
    }
    if credential.certificate_file is None:
        assert credential.client_secret is not None  # the config model guarantees one of both
        return CredentialSpec(
            kind=CredentialKind.SECRET,
            client_secret=credential.client_secret.get_secret_value(),
            **common,
        )
    path = Path(credential.certificate_file)
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise UserInputError(
            f"cannot read the certificate of credential {credential.name!r}: {exc.strerror}",
            source=str(path),
        ) from None
    return CredentialSpec(
        kind=CredentialKind.CERTIFICATE,
        certificate_key=pem.decode("ascii", errors="replace"),
        certificate_thumbprint=certificate_thumbprint(pem, source=str(path)),
        **common,
    )


def _connection_spec(connection: PbxConnection) -> PbxConnectionSpec:
    raw = connection.settings.model_dump(mode="json")
    secrets = {
        key: connection.settings.model_dump()[key].get_secret_value()
        for key in SECRET_SETTING_KEYS
        if raw.get(key) is not None
    }
    settings = {key: value for key, value in raw.items() if key not in SECRET_SETTING_KEYS}
    settings["tenant"] = connection.tenant
    settings["push_line_state_to_teams"] = connection.push_line_state_to_teams
    settings["matching"] = connection.matching.model_dump(mode="json")
    return PbxConnectionSpec(
        name=connection.name,
        kind=connection.kind,
        settings=settings,
        secret_settings=secrets,
        mapping_overrides=dict(connection.mapping or {}),
    )


def declarations_from_settings(settings: Settings) -> Declarations:
    """Everything the configuration declares, in the store's terms (secrets in plaintext)."""
    tenants, credentials, accounts = [], [], []
    for tenant in settings.tenants:
        tenants.append(
            TenantSpec(
                name=tenant.name,
                entra_tenant_id=str(tenant.tenant_id),
                mapping_overrides=dict(tenant.mapping or {}),
            )
        )
        credentials += [_credential_spec(tenant, credential) for credential in tenant.credentials]
        accounts += [
            ServiceAccountSpec(
                upn=account.upn,
                tenant=tenant.name,
                sign_in_method=account.sign_in,
                credential=account.credential,
                password=account.password.get_secret_value() if account.password else None,
            )
            for account in tenant.service_accounts
        ]
    return Declarations(
        tenants=tenants,
        credentials=credentials,
        service_accounts=accounts,
        pbx_connections=[_connection_spec(c) for c in settings.pbx_connections],
    )
