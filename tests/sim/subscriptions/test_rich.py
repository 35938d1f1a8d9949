"""Rich notifications: encryptedContent a subscriber can decrypt and verify, and
validationTokens it can check against the simulator's published Entra keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from m365sim.model import AppRegistration
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID, TENANT_ID, bearer
from tests.sim.schemas import fixture, validator
from tests.sim.subscriptions.conftest import (
    HOOK,
    presence_change,
    subscription_body,
    svc_headers,
    user_id,
)
from tests.sim.subscriptions.helpers import EncryptionKey, Receiver, eventually, make_encryption_key

pytestmark = pytest.mark.usefixtures("running")
GRAPH_PUBLISHER = "0bf30f3b-4a52-48df-9a82-234910c4a086"


def decrypt(content: dict[str, str], key: EncryptionKey) -> dict[str, Any]:
    """What a subscriber does with encryptedContent (the documented steps)."""
    symmetric = key.private_key.decrypt(
        base64.b64decode(content["dataKey"]),
        OAEP(mgf=MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
    data = base64.b64decode(content["data"])
    expected = hmac.new(symmetric, data, hashlib.sha256).digest()
    assert hmac.compare_digest(expected, base64.b64decode(content["dataSignature"]))
    decryptor = Cipher(algorithms.AES(symmetric), modes.CBC(symmetric[:16])).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    result: dict[str, Any] = json.loads(unpadder.update(padded) + unpadder.finalize())
    return result


def verify_token(sim: Simulator, token: str, app_id: str, tenant_id: str) -> dict[str, Any]:
    """Check a validation token as the docs say: keys, expiry, audience, issuer, appid."""
    header = jwt.get_unverified_header(token)
    assert header["kid"] == sim.issuer.key.kid
    key = jwt.PyJWK(sim.issuer.key.jwk()).key
    now = sim.clock.now().timestamp()
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=["RS256"], audience=app_id,
                                        issuer=f"https://sts.windows.net/{tenant_id}/",
                                        options={"verify_exp": False, "verify_iat": False,
                                                 "verify_nbf": False})
    assert claims["nbf"] <= now < claims["exp"]
    assert claims["appid"] == GRAPH_PUBLISHER
    assert claims["tid"] == tenant_id
    return claims


async def _rich(client: httpx.AsyncClient, sim: Simulator, key: EncryptionKey, resource: str,
                headers: dict[str, str] | None = None, **extra: Any) -> str:
    body = subscription_body(sim, resource, includeResourceData=True,
                             encryptionCertificate=key.certificate_b64,
                             encryptionCertificateId="cert-2026", **extra)
    response = await client.post("/v1.0/subscriptions", json=body,
                                 headers=headers or svc_headers(sim))
    assert response.status_code == 201, response.text
    subscription_id: str = response.json()["id"]
    return subscription_id


async def test_rich_presence_notification_decrypts_to_the_presence(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver,
    encryption_key: EncryptionKey,
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    await _rich(client, sim, encryption_key, f"communications/presences/{anna}")
    change = presence_change(anna, "Busy", "InACall")
    sim.bus.publish(change)
    await eventually(lambda: len(receiver.posts) == 1)
    body = receiver.posts[0]["body"]
    validator("types/changeNotificationCollection.json").validate(body)
    assert set(body) == set(fixture("notification-presence-rich.json"))
    [item] = body["value"]
    assert set(item) == set(fixture("notification-presence-rich.json")["value"][0])
    content = item["encryptedContent"]
    assert content["encryptionCertificateId"] == "cert-2026"
    assert content["encryptionCertificateThumbprint"] == (
        hashlib.sha1(encryption_key.der).hexdigest().upper())
    decrypted = decrypt(content, encryption_key)
    assert decrypted == change.resource_data
    assert set(decrypted) == set(fixture("notification-presence-decrypted.json"))
    validator("types/presence.json").validate(decrypted)
    [token] = body["validationTokens"]
    verify_token(sim, token, APP_ID, TENANT_ID)


async def test_tampered_data_fails_the_signature_check(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver,
    encryption_key: EncryptionKey,
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    await _rich(client, sim, encryption_key, f"communications/presences/{anna}")
    sim.bus.publish(presence_change(anna))
    await eventually(lambda: len(receiver.posts) == 1)
    content = dict(receiver.posts[0]["body"]["value"][0]["encryptedContent"])
    data = bytearray(base64.b64decode(content["data"]))
    data[0] ^= 1
    content["data"] = base64.b64encode(bytes(data)).decode()
    with pytest.raises(AssertionError):
        decrypt(content, encryption_key)


async def test_each_notification_has_its_own_key(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver,
    encryption_key: EncryptionKey,
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    await _rich(client, sim, encryption_key, f"communications/presences/{anna}")
    sim.bus.publish(presence_change(anna))
    sim.bus.publish(presence_change(anna))
    await eventually(lambda: len(receiver.items) == 2)
    keys = {i["encryptedContent"]["dataKey"] for i in receiver.items}
    assert len(keys) == 2


async def test_one_validation_token_per_app_and_tenant_in_a_batch(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver,
    encryption_key: EncryptionKey,
) -> None:
    tenant = sim.directory.find_tenant(TENANT_ID)
    assert tenant is not None
    other_app = "11111111-2222-3333-4444-555555555555"
    tenant.apps[other_app] = AppRegistration(app_id=other_app, display_name="other",
                                             delegated_consent={"Presence.Read.All"})
    anna = user_id(sim, "anna@contoso.com")
    svc = user_id(sim, "svc-presence@contoso.com")
    other_token = sim.issuer.access_token(
        tenant_id=TENANT_ID, app_id=other_app, now=sim.clock.now(),
        lifetime=timedelta(hours=1), user_id=svc, scopes=["Presence.Read.All"])
    await _rich(client, sim, encryption_key, f"communications/presences/{anna}")
    await _rich(client, sim, encryption_key, f"communications/presences/{anna}",
                headers=bearer(other_token))
    sim.bus.publish(presence_change(anna))
    await eventually(lambda: len(receiver.items) == 2)
    [post] = receiver.posts
    tokens = post["body"]["validationTokens"]
    audiences = sorted(jwt.decode(t, options={"verify_signature": False})["aud"] for t in tokens)
    assert audiences == sorted([APP_ID, other_app])
    for token in tokens:
        audience = jwt.decode(token, options={"verify_signature": False})["aud"]
        verify_token(sim, token, audience, TENANT_ID)


async def test_certificate_rotation_by_patch(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver,
    encryption_key: EncryptionKey,
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    subscription_id = await _rich(client, sim, encryption_key, f"communications/presences/{anna}")
    new_key = make_encryption_key(3072)
    patched = await client.patch(f"/v1.0/subscriptions/{subscription_id}", headers=svc_headers(sim),
                                 json={"encryptionCertificate": new_key.certificate_b64,
                                       "encryptionCertificateId": "cert-2027"})
    assert patched.status_code == 200
    assert patched.json()["encryptionCertificateId"] == "cert-2027"
    change = presence_change(anna, "Away", "Away")
    sim.bus.publish(change)
    await eventually(lambda: len(receiver.items) == 1)
    content = receiver.items[0]["encryptedContent"]
    assert content["encryptionCertificateId"] == "cert-2027"
    assert decrypt(content, new_key) == change.resource_data


async def test_lifecycle_notifications_of_rich_subscriptions_carry_tokens(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver,
    encryption_key: EncryptionKey,
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    subscription_id = await _rich(client, sim, encryption_key,
                                  f"communications/presences/{anna}",
                                  lifecycleNotificationUrl=HOOK)
    answer = await client.post(f"/_sim/subscriptions/{subscription_id}/lifecycle",
                               json={"event": "reauthorizationRequired"})
    assert answer.json()["sent"] is True
    await eventually(lambda: len(receiver.lifecycle()) == 1)
    [token] = receiver.posts[-1]["body"]["validationTokens"]
    verify_token(sim, token, APP_ID, TENANT_ID)
