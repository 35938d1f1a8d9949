"""Fernet encryption of secret fields, with the key from the environment or a key file."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from m365pbx.store.errors import SecretKeyError

ENV_VAR = "M365PBX_SECRET_KEY"
"""Environment variable with one or more comma-separated Fernet keys, newest first."""

DEFAULT_KEY_FILE = Path("var/secret.key")
"""Key file used when the environment variable is not set (relative to the working directory)."""


def generate_key() -> str:
    """Return a new random Fernet key (URL-safe base64 text)."""
    return Fernet.generate_key().decode("ascii")


def parse_keys(text: str, *, source: str) -> list[str]:
    """Split key text on commas and lines (blank lines and `#` comments skipped) and check each."""
    keys: list[str] = []
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        keys.extend(part.strip() for part in line.split(",") if part.strip())
    if not keys:
        raise SecretKeyError(f"{source} holds no key")
    for index, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            # Say which key, never what it is.
            raise SecretKeyError(
                f"{source}: key {index} of {len(keys)} is not a valid Fernet key "
                "(expected 32 bytes in URL-safe base64, 44 characters)"
            ) from None
    return keys


class SecretBox:
    """Encrypts and decrypts secret fields; the first key encrypts, every key decrypts."""

    def __init__(self, keys: Sequence[str], *, source: str = "the configured secret keys"):
        if not keys:
            raise SecretKeyError(f"{source} holds no key")
        self._fernet = MultiFernet([Fernet(key) for key in keys])
        self._count = len(keys)
        self.source = source

    def __repr__(self) -> str:
        return f"SecretBox({self._count} key(s) from {self.source})"

    def encrypt(self, plaintext: str) -> str:
        """Return the Fernet token for a plaintext secret."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str, *, what: str) -> str:
        """Return a token's plaintext; `what` names the field in errors (never the value)."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise SecretKeyError(self._cannot_decrypt(what)) from None

    def rotate(self, token: str, *, what: str) -> str:
        """Return the token re-encrypted with the newest key."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise SecretKeyError(self._cannot_decrypt(what)) from None

    def encrypt_optional(self, plaintext: str | None) -> str | None:
        """Encrypt a plaintext, passing None through."""
        return None if plaintext is None else self.encrypt(plaintext)

    def decrypt_optional(self, token: str | None, *, what: str) -> str | None:
        """Decrypt a token, passing None through."""
        return None if token is None else self.decrypt(token, what=what)

    def _cannot_decrypt(self, what: str) -> str:
        return (
            f"cannot decrypt {what}: none of the {self._count} key(s) from {self.source} "
            f"fits; the secret key was changed or lost (to rotate keys, put the new key "
            f"first and keep the old one after it in {ENV_VAR} or the key file)"
        )


def load_secret_box(
    *, key_file: Path | str = DEFAULT_KEY_FILE, environ: Mapping[str, str] | None = None
) -> SecretBox:
    """Return the box for the keys in $M365PBX_SECRET_KEY, else the key file (made if absent)."""
    env = os.environ if environ is None else environ
    if ENV_VAR in env:
        return SecretBox(parse_keys(env[ENV_VAR], source=ENV_VAR), source=ENV_VAR)
    path = Path(key_file)
    if not path.exists():
        create_key_file(path)
    return SecretBox(read_key_file(path), source=f"key file {path}")


def read_key_file(path: Path) -> list[str]:
    """Return the keys in a key file, refusing one that group or others can access."""
    try:
        info = path.stat()
    except OSError as exc:
        raise SecretKeyError(f"cannot read key file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretKeyError(f"key file {path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if os.name == "posix" and mode & 0o077:
        raise SecretKeyError(
            f"key file {path} is accessible by group or others (mode {mode:04o}); "
            f"refusing to use it: run `chmod 600 {path}`"
        )
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeError) as exc:
        raise SecretKeyError(f"cannot read key file {path}: {exc}") from None
    return parse_keys(text, source=f"key file {path}")


def create_key_file(path: Path) -> None:
    """Write a new key to `path` with mode 0600; keep the file another process made first."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # the umask could only have removed bits; be explicit
        os.write(descriptor, f"{generate_key()}\n".encode("ascii"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    try:
        # link() fails if the name exists: two first starts cannot both write a key.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_key_file(path: Path, keys: Sequence[str]) -> None:
    """Replace the key file with these keys (newest first), mode 0600, in one rename."""
    text = "".join(f"{key}\n" for key in parse_keys(",".join(keys), source="the new keys"))
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            os.fchmod(descriptor, 0o600)
            os.write(descriptor, text.encode("ascii"))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
