"""Imports every command module so that each registers itself on the app."""

from __future__ import annotations

from m365pbx.cli import config  # noqa: F401
from m365pbx.cli import db  # noqa: F401
from m365pbx.cli import match  # noqa: F401
