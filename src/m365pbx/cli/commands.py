"""Imports every command module so that each registers itself on the app."""

from __future__ import annotations

from m365pbx.cli import config, db, mapping, match

COMMAND_MODULES = (config, db, mapping, match)
