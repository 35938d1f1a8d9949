"""The command modules, each registering its commands on the app when imported."""

from __future__ import annotations

import importlib

# Top-level command -> the module that registers it. `m365pbx <command> ...` imports only that
# module: typer builds every registered command's options from its signature, which cost more
# than a light command's own work (`--help` and anything else still import all of them).
# tests/cli/test_startup.py checks this table against what the modules register.
MODULE_OF_COMMAND = {
    "admin": "admin",
    "api-key": "api_keys",
    "audit": "audit",
    "check": "check",
    "config": "config",
    "db": "db",
    "demo": "demo",
    "mapping": "mapping",
    "match": "match",
    "secrets": "secrets",
    "serve": "serve",
    "signin": "signin",
    "status": "status",
    "subscriptions": "subscriptions",
    "sync": "sync",
}

COMMAND_MODULES = tuple(dict.fromkeys(MODULE_OF_COMMAND.values()))


def register(command: str | None = None) -> None:
    """Import the module of `command` (a top-level command name), or every command module."""
    module = MODULE_OF_COMMAND.get(command) if command else None
    for name in (module,) if module else COMMAND_MODULES:
        importlib.import_module(f"m365pbx.cli.{name}")
