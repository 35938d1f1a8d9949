"""What a credential may do and how a service account signs in: one vocabulary for the
configuration file, the store and the Graph client."""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    """What a credential (app registration) has been granted and may be used for."""

    PRESENCE_READ = "presence.read"
    PRESENCE_WRITE = "presence.write"
    CALENDARS_READ = "calendars.read"
    CONTACTS_READ = "contacts.read"
    USERS_READ = "users.read"


class SignInMethod(StrEnum):
    """How a service account signs in: with its password (ROPC) or once by device code."""

    PASSWORD = "password"  # noqa: S105 - a sign-in method, not a secret
    DEVICE_CODE = "device_code"
