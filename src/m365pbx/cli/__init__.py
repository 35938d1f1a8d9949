"""Command line interface: `m365pbx <command>`."""

from __future__ import annotations

from m365pbx.cli.app import app, main

__all__ = ["app", "main"]
