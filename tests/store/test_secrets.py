"""The secret key: where it comes from, how it is protected, and what a wrong one says."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from m365pbx.store import SecretBox, SecretKeyError, generate_key, load_secret_box
from m365pbx.store.secrets import ENV_VAR, parse_keys


def test_key_file_is_created_with_mode_0600(tmp_path: Path) -> None:
    key_file = tmp_path / "var" / "secret.key"
    box = load_secret_box(key_file=key_file, environ={})
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    token = box.encrypt("hunter2")
    again = load_secret_box(key_file=key_file, environ={})  # the same key is read back
    assert again.decrypt(token, what="test value") == "hunter2"


def test_key_file_created_under_a_loose_umask_is_still_private(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_secret_box(key_file=tmp_path / "secret.key", environ={})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    key_file = tmp_path / "secret.key"
    key = generate_key()
    key_file.write_text(key + "\n")
    key_file.chmod(mode)
    with pytest.raises(SecretKeyError) as caught:
        load_secret_box(key_file=key_file, environ={})
    message = str(caught.value)
    assert str(key_file) in message
    assert f"{mode:04o}" in message
    assert "chmod 600" in message
    assert key not in message


def test_environment_keys_win_over_the_key_file(tmp_path: Path) -> None:
    new, old = generate_key(), generate_key()
    token_from_old = Fernet(old.encode()).encrypt(b"kept").decode()
    box = load_secret_box(key_file=tmp_path / "unused.key", environ={ENV_VAR: f" {new} , {old} "})
    assert not (tmp_path / "unused.key").exists()
    assert box.decrypt(token_from_old, what="old value") == "kept"
    # The newest key (first) encrypts.
    assert Fernet(new.encode()).decrypt(box.encrypt("fresh").encode()) == b"fresh"


def test_key_file_may_hold_several_keys_and_comments(tmp_path: Path) -> None:
    new, old = generate_key(), generate_key()
    key_file = tmp_path / "secret.key"
    key_file.write_text(f"# newest first\n{new}\n\n{old}\n")
    key_file.chmod(0o600)
    box = load_secret_box(key_file=key_file, environ={})
    assert box.decrypt(Fernet(old.encode()).encrypt(b"x").decode(), what="value") == "x"


def test_malformed_key_is_refused_without_showing_it() -> None:
    good, bad = generate_key(), "not-a-fernet-key-but-a-secret-anyway"
    with pytest.raises(SecretKeyError) as caught:
        parse_keys(f"{good},{bad}", source=ENV_VAR)
    message = str(caught.value)
    assert "key 2 of 2" in message and ENV_VAR in message
    assert bad not in message and good not in message


def test_empty_key_setting_is_refused() -> None:
    with pytest.raises(SecretKeyError, match="holds no key"):
        load_secret_box(environ={ENV_VAR: " , "})


def test_wrong_key_names_what_failed_and_never_the_secret() -> None:
    token = SecretBox([generate_key()]).encrypt("correct horse battery staple")
    other = SecretBox([generate_key()], source="key file /etc/m365pbx/secret.key")
    with pytest.raises(SecretKeyError) as caught:
        other.decrypt(token, what="password of service account 'svc@contoso.com'")
    message = str(caught.value)
    assert "password of service account 'svc@contoso.com'" in message
    assert "key file /etc/m365pbx/secret.key" in message
    assert "correct horse" not in message and token not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_rotation_moves_a_token_to_the_newest_key() -> None:
    old, new = generate_key(), generate_key()
    token = SecretBox([old]).encrypt("value")
    rotated = SecretBox([new, old]).rotate(token, what="value")
    assert SecretBox([new]).decrypt(rotated, what="value") == "value"


def test_box_repr_shows_no_key() -> None:
    key = generate_key()
    assert key not in repr(SecretBox([key]))
