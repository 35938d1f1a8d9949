"""Admin passwords: argon2id hashes (argon2-cffi's defaults), never the password itself."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()
# Checked when the name is unknown, so that an unknown name takes as long as a known one.
_DUMMY_HASH = _HASHER.hash("no admin has this password")
MIN_LENGTH = 12


def hash_password(password: str) -> str:
    """The argon2id hash of `password`; ValueError for a password too short to keep."""
    if len(password) < MIN_LENGTH:
        raise ValueError(f"the password must have at least {MIN_LENGTH} characters")
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches `password_hash` (None: an unknown admin, always False)."""
    try:
        ok = _HASHER.verify(password_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return ok and password_hash is not None
