"""Webhook bodies from Graph: parse strictly, check the client state, decrypt rich content,
verify the validation tokens (graph.md 4.1, 4.5, 4.6)."""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_VALIDATION_TOKEN_CHARS = 4096
# The app Graph's change notifications are issued by (the `azp` of validation tokens).
GRAPH_CHANGE_TRACKING_APP = "0bf30f3b-4a52-48df-9a82-234910c4a086"


class MalformedNotification(ValueError):
    """A webhook body that is not what Graph sends; the message says what is wrong."""


@dataclass(frozen=True)
class EncryptedContent:
    """The `encryptedContent` of a rich notification."""

    data: str
    data_key: str
    data_signature: str
    certificate_id: str
    certificate_thumbprint: str


@dataclass(frozen=True)
class ChangeNotification:
    """One item of a notification collection (change or lifecycle event)."""

    subscription_id: str
    client_state: str | None = field(repr=False)
    tenant_id: str
    change_type: str = ""
    resource: str = ""
    resource_data: Mapping[str, Any] = field(default_factory=dict)
    lifecycle_event: str | None = None
    encrypted: EncryptedContent | None = None

    @property
    def resource_id(self) -> str:
        """The id of the changed resource (for presence: the user's object id)."""
        rid = self.resource_data.get("id")
        if isinstance(rid, str) and rid:
            return rid
        return self.resource.rstrip("/").rsplit("/", 1)[-1].strip("'()")


@dataclass(frozen=True)
class NotificationBatch:
    """A POSTed collection: its notifications and validation tokens (rich only)."""

    notifications: list[ChangeNotification]
    validation_tokens: list[str]


Where = Callable[[], str]  # names the item in an error message, built only when needed


def _text(item: Mapping[str, Any], key: str, *, required: bool, where: Where) -> str:
    value = item.get(key)
    if value.__class__ is str and (value or not required):
        return value  # the common case, checked cheaply
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise MalformedNotification(f"{where()}.{key} must be a non-empty string")
    return value


def _encrypted(raw: object, where: Where) -> EncryptedContent | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise MalformedNotification(f"{where()}.encryptedContent must be an object")
    return EncryptedContent(
        data=_text(raw, "data", required=True, where=where),
        data_key=_text(raw, "dataKey", required=True, where=where),
        data_signature=_text(raw, "dataSignature", required=True, where=where),
        certificate_id=_text(raw, "encryptionCertificateId", required=False, where=where),
        certificate_thumbprint=_text(raw, "encryptionCertificateThumbprint", required=False,
                                     where=where),
    )


def parse_notifications(body: bytes) -> NotificationBatch:
    """Parse a webhook POST body; raise MalformedNotification for anything Graph would not send."""
    if len(body) > MAX_BODY_BYTES:
        raise MalformedNotification(f"body of {len(body)} bytes is larger than accepted")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedNotification(f"body is not JSON: {exc}") from None
    except RecursionError:
        raise MalformedNotification("body is not JSON Graph sends: nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("value"), list):
        raise MalformedNotification("body must be an object with a 'value' list")
    if not data["value"]:
        raise MalformedNotification("'value' is empty")
    notifications = []
    for index, item in enumerate(data["value"]):
        def where(index: int = index) -> str:
            return f"value[{index}]"
        if not isinstance(item, dict):
            raise MalformedNotification(f"{where()} must be an object")
        lifecycle = item.get("lifecycleEvent")
        resource_data = item.get("resourceData")
        if resource_data is None:
            resource_data = {}
        if not isinstance(resource_data, dict):
            raise MalformedNotification(f"{where()}.resourceData must be an object")
        client_state = item.get("clientState")
        if client_state is not None and not isinstance(client_state, str):
            raise MalformedNotification(f"{where()}.clientState must be a string")
        notifications.append(ChangeNotification(
            subscription_id=_text(item, "subscriptionId", required=True, where=where),
            client_state=client_state,
            tenant_id=_text(item, "tenantId", required=False, where=where),
            change_type=_text(item, "changeType", required=lifecycle is None, where=where),
            resource=_text(item, "resource", required=lifecycle is None, where=where),
            resource_data=resource_data,
            lifecycle_event=str(lifecycle) if lifecycle is not None else None,
            encrypted=_encrypted(item.get("encryptedContent"), where),
        ))
    tokens = data.get("validationTokens") or []
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise MalformedNotification("validationTokens must be a list of strings")
    return NotificationBatch(notifications, list(tokens))


def client_state_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of the client state secret."""
    if given is None:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def validation_echo(token: str | None) -> str | None:
    """The text to echo for a subscription validation request, or None if it is not one."""
    if token is None or not token or len(token) > MAX_VALIDATION_TOKEN_CHARS:
        return None
    return token


def decrypt_content(content: EncryptedContent, private_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """Decrypt a rich notification's resource: RSA-OAEP(SHA-1) key, HMAC-SHA256, AES-CBC."""
    try:
        key = private_key.decrypt(
            base64.b64decode(content.data_key),
            rsa_padding.OAEP(mgf=rsa_padding.MGF1(hashes.SHA1()),  # noqa: S303
                             algorithm=hashes.SHA1(), label=None),  # noqa: S303
        )
        data = base64.b64decode(content.data)
        signature = base64.b64decode(content.data_signature)
    except (ValueError, TypeError) as exc:
        raise MalformedNotification(f"encrypted content cannot be decrypted: {exc}") from None
    mac = crypto_hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    try:
        mac.verify(signature)
    except InvalidSignature:
        raise MalformedNotification("encrypted content fails its signature check") from None
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        plain = unpadder.update(padded) + unpadder.finalize()
        resource = json.loads(plain)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedNotification(f"decrypted content is not JSON: {exc}") from None
    if not isinstance(resource, dict):
        raise MalformedNotification("decrypted content is not an object")
    return resource


def verify_validation_tokens(
    tokens: Sequence[str],
    *,
    app_ids: set[str],
    tenant_ids: set[str],
    keys: Mapping[str, Any],
    now: float,
    leeway: float = 300.0,
) -> float:
    """Check every validation token: signed by Entra's published keys, for our app and tenant.

    `keys` maps key id (`kid`) to a public key; raise MalformedNotification on any failure.
    Return the POSIX time until which the tokens stay acceptable (the earliest expiry plus
    the leeway), so that a caller may trust the same tokens again until then.
    """
    if not tokens:
        raise MalformedNotification("rich notification without validationTokens")
    until = float("inf")
    for token in tokens:
        try:
            header = jwt.get_unverified_header(token)
            key = keys.get(str(header.get("kid")))
            if key is None:
                raise MalformedNotification("validation token signed by an unknown key")
            claims = jwt.decode(token, key, algorithms=["RS256"], audience=sorted(app_ids),
                                options={"verify_exp": False, "verify_nbf": False,
                                         "verify_iat": False})
        except jwt.PyJWTError as exc:
            raise MalformedNotification(f"validation token rejected: {exc}") from None
        exp = float(claims.get("exp", 0))
        nbf = float(claims.get("nbf", 0))
        if now > exp + leeway or now + leeway < nbf:
            raise MalformedNotification("validation token is expired or not yet valid")
        issuer = str(claims.get("iss", ""))
        tid = str(claims.get("tid", ""))
        if not issuer.startswith("https://sts.windows.net/"):
            raise MalformedNotification("validation token from another issuer")
        if tenant_ids and tid not in tenant_ids:
            # Tenant ids are no secret, and naming both shows a misconfigured tenant_id.
            raise MalformedNotification(f"validation token for tenant {tid or '(none)'}, "
                                        f"expected {', '.join(sorted(tenant_ids))}")
        if str(claims.get("azp") or claims.get("appid") or "") != GRAPH_CHANGE_TRACKING_APP:
            raise MalformedNotification("validation token not issued to Graph change tracking")
        until = min(until, exp + leeway)
    return until


def validation_token_key_ids(tokens: Sequence[str]) -> set[str]:
    """The key ids (`kid`) that signed these tokens, read from their unverified headers."""
    kids = set()
    for token in tokens:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise MalformedNotification(f"validation token rejected: {exc}") from None
        if kid:
            kids.add(str(kid))
    return kids


def keys_from_jwks(jwks: Mapping[str, Any]) -> dict[str, Any]:
    """Public keys by kid from a JWKS document (Entra's `discovery/v2.0/keys`)."""
    found: dict[str, Any] = {}
    for entry in jwks.get("keys", []):
        if isinstance(entry, dict) and entry.get("kty") == "RSA" and entry.get("kid"):
            found[str(entry["kid"])] = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(entry))
    return found
