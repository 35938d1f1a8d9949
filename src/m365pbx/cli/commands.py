"""Imports every command module so that each registers itself on the app."""

from __future__ import annotations

from m365pbx.cli import (
    admin,
    api_keys,
    audit,
    check,
    config,
    db,
    demo,
    mapping,
    match,
    secrets,
    serve,
    signin,
    status,
    subscriptions,
    sync,
)

COMMAND_MODULES = (admin, api_keys, audit, check, config, db, demo, mapping, match, secrets,
                   serve, signin, status, subscriptions, sync)
