"""Decrypting rich notifications in a worker process (no GIL shared with the event loop).

The event loop's thread holds the GIL while it parses webhook bodies; a decryption thread
then waits up to the switch interval (5 ms) each time it needs the GIL back around the RSA
step, which capped threads at about 200 decryptions a second under load. A process has a
GIL of its own. Keys travel as PKCS#8 DER with each chunk and are loaded once per process.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_private_key

from m365pbx.graph.notifications import EncryptedContent, MalformedNotification, decrypt_content

_loaded: dict[str, tuple[bytes, rsa.RSAPrivateKey]] = {}


def _key(certificate_id: str, der: bytes) -> rsa.RSAPrivateKey:
    known = _loaded.get(certificate_id)
    if known is not None and known[0] == der:
        return known[1]
    key = load_der_private_key(der, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("a notification certificate's key must be RSA")
    _loaded[certificate_id] = (der, key)
    return key


def decrypt_chunk(keys: dict[str, bytes], contents: list[EncryptedContent]
                  ) -> list[dict[str, Any] | None]:
    """Decrypt each content with the key of its certificate; None where it fails."""
    done: list[dict[str, Any] | None] = []
    for content in contents:
        try:
            done.append(decrypt_content(content, _key(content.certificate_id,
                                                      keys[content.certificate_id])))
        except MalformedNotification:
            done.append(None)
    return done
