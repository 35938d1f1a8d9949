"""API keys: format, salted hashing, constant-time checks, scopes, revocation."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from m365pbx.pbx.api.keys import (
    KEY_ID_LENGTH,
    KEY_PREFIX,
    ApiKeyChecker,
    InsufficientScope,
    InvalidApiKey,
    MemoryApiKeyChecker,
    Scope,
    StoredKey,
    generate_api_key,
    hash_key,
    key_id_of,
    key_matches,
    parse_scopes,
    verify,
)

from .conftest import NOW


def test_a_new_key_has_the_prefix_a_key_id_and_only_its_hash_kept() -> None:
    new = generate_api_key()
    assert new.key.startswith(KEY_PREFIX)
    assert len(new.key) == len(KEY_PREFIX) + 43
    assert new.key_id == new.key[len(KEY_PREFIX) : len(KEY_PREFIX) + KEY_ID_LENGTH]
    expected = hmac.new(bytes.fromhex(new.salt), new.key.encode(), hashlib.sha256).hexdigest()
    assert new.key_hash == expected
    assert new.key not in repr(new)
    assert new.key[len(KEY_PREFIX) :] not in new.key_hash


def test_keys_and_salts_differ_every_time() -> None:
    keys = [generate_api_key() for _ in range(50)]
    assert len({k.key for k in keys}) == len({k.salt for k in keys}) == 50


def test_the_same_key_under_two_salts_hashes_differently() -> None:
    key = generate_api_key().key
    assert hash_key(key, "00" * 16) != hash_key(key, "01" * 16)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "m365pbx_",
        "m365pbx_short",
        "M365PBX_" + "a" * 43,
        "m365pbx_" + "a" * 42 + "!",
        "m365pbx_" + "a" * 44,
        "Bearer m365pbx_" + "a" * 36,
    ],
)
def test_malformed_keys_have_no_key_id(text: str) -> None:
    assert key_id_of(text) is None


def test_key_matches_only_the_exact_key() -> None:
    new = generate_api_key()
    assert key_matches(new.key, new.salt, new.key_hash)
    assert not key_matches(new.key[:-1] + ("A" if new.key[-1] != "A" else "B"), new.salt,
                           new.key_hash)


def test_parse_scopes() -> None:
    assert parse_scopes(["READ", " write", "read"]) == {Scope.READ, Scope.WRITE}
    with pytest.raises(ValueError, match="unknown scope 'admin'"):
        parse_scopes(["admin"])


def _stored(scopes: set[Scope], revoked: bool = False) -> tuple[str, StoredKey]:
    new = generate_api_key()
    return new.key, StoredKey("board", new.salt, new.key_hash, frozenset(scopes),
                              revoked_at=NOW if revoked else None)


def test_verify_returns_the_identity() -> None:
    key, stored = _stored({Scope.READ})
    identity = verify(stored, key, Scope.READ)
    assert identity.name == "board"
    assert identity.scopes == {Scope.READ}


def test_verify_refuses_a_wrong_key_without_quoting_it() -> None:
    key, stored = _stored({Scope.READ})
    other = generate_api_key().key
    with pytest.raises(InvalidApiKey) as caught:
        verify(stored, other, Scope.READ)
    assert other not in str(caught.value) and key not in str(caught.value)
    assert caught.value.status == 401
    with pytest.raises(InvalidApiKey):
        verify(None, key, Scope.READ)


def test_verify_refuses_a_revoked_key_and_a_missing_scope() -> None:
    key, stored = _stored({Scope.READ}, revoked=True)
    with pytest.raises(InvalidApiKey, match="revoked"):
        verify(stored, key, Scope.READ)
    key, stored = _stored({Scope.READ})
    with pytest.raises(InsufficientScope, match="'write'") as caught:
        verify(stored, key, Scope.WRITE)
    assert caught.value.status == 403


async def test_memory_checker() -> None:
    checker = MemoryApiKeyChecker()
    assert isinstance(checker, ApiKeyChecker)
    key = checker.add("console", [Scope.READ, "write"])
    assert (await checker.check(key, Scope.WRITE)).name == "console"
    with pytest.raises(InvalidApiKey):
        await checker.check("m365pbx_nonsense", Scope.READ)
    checker.revoke("console", NOW)
    with pytest.raises(InvalidApiKey, match="revoked"):
        await checker.check(key, Scope.READ)
