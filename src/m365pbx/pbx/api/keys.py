"""API keys of the presence API's clients: generation, salted hashing, checking, scopes.

A key reads `m365pbx_<key id><secret>`: 43 URL-safe characters from 32 random bytes after
the prefix, of which the first 12 (the key id) find the stored row without the secret. Only
HMAC-SHA256(salt, key) with a random 16-byte salt per key is stored. A slow password hash
(scrypt, Argon2) protects guessable passwords; these keys carry 256 random bits, so no
dictionary or brute force applies to a leaked hash, and a slow hash would only turn every
API request into CPU work an attacker could trigger at will. The salt keeps equal hashes
from revealing anything across installations. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

KEY_PREFIX = "m365pbx_"
KEY_ID_LENGTH = 12
_KEY_BYTES = 32
_SALT_BYTES = 16
_KEY_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_KEY_LENGTH = len(KEY_PREFIX) + 43  # token_urlsafe(32) is always 43 characters


class Scope(StrEnum):
    """What a key may do: `read` people, presence and the stream; `write` events and users;
    `contacts` search contacts and look up callers' names."""

    READ = "read"
    WRITE = "write"
    CONTACTS = "contacts"


def parse_scopes(names: Iterable[str]) -> frozenset[Scope]:
    """Return the scopes named (case-insensitive); ValueError naming an unknown one."""
    scopes = set()
    for name in names:
        folded = name.strip().casefold()
        try:
            scopes.add(Scope(folded))
        except ValueError:
            allowed = ", ".join(scope.value for scope in Scope)
            raise ValueError(f"unknown scope {name!r}; expected one of: {allowed}") from None
    return frozenset(scopes)


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A freshly generated key and what is stored of it; the key itself is shown once."""

    key: str = field(repr=False)
    key_id: str
    salt: str
    key_hash: str


def generate_api_key() -> NewApiKey:
    """Return a new random key with its key id, salt and hash."""
    key = KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)
    salt = secrets.token_hex(_SALT_BYTES)
    return NewApiKey(key=key, key_id=key_id_of(key) or "", salt=salt, key_hash=hash_key(key, salt))


def key_id_of(key: str) -> str | None:
    """Return the key id (public lookup part) of a well-formed key, or None."""
    if len(key) != _KEY_LENGTH or not key.startswith(KEY_PREFIX):
        return None
    body = key[len(KEY_PREFIX) :]
    if not set(body) <= _KEY_ALPHABET:
        return None
    return body[:KEY_ID_LENGTH]


def hash_key(key: str, salt: str) -> str:
    """Return the hex HMAC-SHA256 of `key` under the hex `salt`."""
    return hmac.new(bytes.fromhex(salt), key.encode(), hashlib.sha256).hexdigest()


def key_matches(key: str, salt: str, key_hash: str) -> bool:
    """Whether `key` hashes to `key_hash` (constant-time comparison)."""
    return hmac.compare_digest(hash_key(key, salt), key_hash)


@dataclass(frozen=True, slots=True)
class ApiClientIdentity:
    """The client a request was authenticated as, and what it may do."""

    name: str
    scopes: frozenset[Scope]


@dataclass(frozen=True, slots=True)
class StoredKey:
    """What is kept of one client's key: enough to check it, never enough to rebuild it."""

    name: str
    salt: str
    key_hash: str
    scopes: frozenset[Scope]
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class ApiKeyError(Exception):
    """A request's key was refused; `status` is the HTTP status, `code` a stable word."""

    status = 401
    code = "invalid-api-key"


class InvalidApiKey(ApiKeyError):
    """The key is malformed, unknown, wrong or revoked (the message never quotes it)."""


class InsufficientScope(ApiKeyError):
    """The key is valid but lacks the scope the request needs."""

    status = 403
    code = "insufficient-scope"


def verify(stored: StoredKey | None, key: str, scope: Scope) -> ApiClientIdentity:
    """Return the identity if `key` matches `stored` and has `scope`; raise ApiKeyError else."""
    # A wrong key id is as unknown as a wrong secret: one answer for both, so a probe
    # cannot tell which part was right.
    if stored is None or not key_matches(key, stored.salt, stored.key_hash):
        raise InvalidApiKey("the API key is not valid")
    if stored.revoked_at is not None:
        raise InvalidApiKey(f"the API key of client {stored.name!r} was revoked")
    if scope not in stored.scopes:
        raise InsufficientScope(
            f"client {stored.name!r} lacks the {scope.value!r} scope this request needs"
        )
    return ApiClientIdentity(stored.name, stored.scopes)


@runtime_checkable
class ApiKeyChecker(Protocol):
    """Checks the key a request presents."""

    async def check(self, key: str, scope: Scope) -> ApiClientIdentity:
        """Return who `key` belongs to if it is valid and has `scope`; raise ApiKeyError else."""
        ...


class MemoryApiKeyChecker:
    """Keys kept in memory (tests, demo); hashed like the stored ones."""

    def __init__(self) -> None:
        self._by_key_id: dict[str, tuple[str, StoredKey]] = {}

    def add(self, name: str, scopes: Iterable[Scope | str] = (Scope.READ,)) -> str:
        """Create a key for client `name` with these scopes and return it."""
        new = generate_api_key()
        stored = StoredKey(name, new.salt, new.key_hash, parse_scopes(scopes))
        self._by_key_id[new.key_id] = (name, stored)
        return new.key

    def revoke(self, name: str, at: datetime) -> None:
        """Revoke every key of client `name`."""
        for key_id, (owner, stored) in list(self._by_key_id.items()):
            if owner == name:
                revoked = StoredKey(
                    stored.name, stored.salt, stored.key_hash, stored.scopes, revoked_at=at
                )
                self._by_key_id[key_id] = (owner, revoked)

    async def check(self, key: str, scope: Scope) -> ApiClientIdentity:
        """Return who `key` belongs to if it is valid and has `scope`; raise ApiKeyError else."""
        key_id = key_id_of(key)
        entry = self._by_key_id.get(key_id) if key_id else None
        return verify(entry[1] if entry else None, key, scope)
