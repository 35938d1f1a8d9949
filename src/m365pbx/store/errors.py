"""Errors raised by the store; each names the object or setting at fault, never a secret."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every store error."""


class SecretKeyError(StoreError):
    """The secret key is missing, malformed, unsafe, or cannot decrypt a stored value."""


class NotFoundError(StoreError):
    """The object asked for does not exist."""


class ReadOnlyObjectError(StoreError):
    """The object is declared in the configuration file; change it there."""


class ConflictError(StoreError):
    """The change would break a uniqueness or reference rule; nothing was changed."""


class EmptyDirectoryError(StoreError):
    """Replacing a directory with nothing was refused (a failed fetch must not wipe it)."""


class DatabaseUrlError(StoreError):
    """The database URL cannot be parsed or names a database the store does not support."""
