"""The notification certificates of this installation, kept across restarts.

Subscriptions resumed after a restart keep the certificate they were created with, so its
private key must survive: it is saved next to the database, encrypted with the same key
as every other secret. Old certificates stay until no subscription can use them.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from m365pbx.clock import Clock
from m365pbx.graph.certificates import NotificationCertificate
from m365pbx.store import SecretBox, StoreError

log = logging.getLogger(__name__)
KEEP_AFTER_EXPIRY = timedelta(hours=2)


class CertificateKeeper:
    """Hands out the current certificate and finds private keys by certificate id."""

    def __init__(self, path: Path, box: SecretBox, clock: Clock) -> None:
        self.path = path
        self.box = box
        self.clock = clock
        self._certificates: dict[str, NotificationCertificate] = {}
        self._load()

    def current(self) -> NotificationCertificate:
        """The certificate new subscriptions use (made or rotated as needed)."""
        now = self.clock.now()
        newest = max(self._certificates.values(), key=lambda c: c.not_after, default=None)
        if newest is None or newest.due_for_rotation(now):
            newest = NotificationCertificate.generate(now=now)
            self._certificates[newest.id] = newest
            self._prune(now)
            self._save()
        return newest

    def private_key(self, certificate_id: str) -> rsa.RSAPrivateKey | None:
        """The private key of a certificate we made, if we still have it."""
        found = self._certificates.get(certificate_id)
        return None if found is None else found.private_key()

    def _prune(self, now: datetime) -> None:
        for cid, certificate in list(self._certificates.items()):
            if certificate.not_after + KEEP_AFTER_EXPIRY < now:
                del self._certificates[cid]

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            data = json.loads(self.box.decrypt(self.path.read_text(), what=str(self.path)))
            for item in data:
                certificate = NotificationCertificate(
                    item["id"], bytes.fromhex(item["der"]), item["key"].encode(),
                    datetime.fromisoformat(item["not_after"]),
                )
                self._certificates[certificate.id] = certificate
        except (ValueError, KeyError, OSError, StoreError) as exc:
            log.warning("notification certificates in %s unreadable (%s); making new ones",
                        self.path, type(exc).__name__)

    def _save(self) -> None:
        data = [
            {"id": c.id, "der": c.certificate_der.hex(), "key": c.private_key_pem.decode(),
             "not_after": c.not_after.isoformat()}
            for c in self._certificates.values()
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(self.box.encrypt(json.dumps(data)))
        temporary.chmod(0o600)
        temporary.replace(self.path)
