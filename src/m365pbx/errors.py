"""Errors that reach a person: each says where the problem is and what was expected."""

from __future__ import annotations


class UserInputError(Exception):
    """Bad input from a file, flag or request; the CLI exits with status 2 and changes nothing."""

    def __init__(self, message: str, *, source: str | None = None, location: str | None = None):
        self.message = message
        self.source = source
        self.location = location
        super().__init__(self.describe())

    def describe(self) -> str:
        """Return 'source:location: message' with the parts that are known."""
        where = ":".join(part for part in (self.source, self.location) if part)
        return f"{where}: {self.message}" if where else self.message
