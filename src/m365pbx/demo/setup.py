"""The demo's tenant (for the simulator) and configuration (for m365pbx)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TENANT_ID = "5d2f6c0e-6f36-4b6a-9a43-7f0d2a1b9c11"
DOMAIN = "demo.contoso.com"
SERVICE_ACCOUNTS = ("presence-1@demo.contoso.com", "presence-2@demo.contoso.com")
CONNECTION = "demo-pbx"


@dataclass(frozen=True)
class DemoSetup:
    """Everything generated for one demo run (secrets stay in files, never printed)."""

    directory: Path
    app_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    app_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)

    @property
    def scenario_file(self) -> Path:
        """The simulator's scenario."""
        return self.directory / "scenario.yaml"

    @property
    def config_file(self) -> Path:
        """m365pbx's configuration."""
        return self.directory / "m365pbx.yaml"

    def write_scenario(self, people: int) -> Path:
        """A tenant with `people` generated users, two service accounts and our app."""
        scenario = {"tenants": [{
            "id": TENANT_ID,
            "name": "Contoso (demo)",
            "domains": [DOMAIN],
            "apps": [{
                "app_id": self.app_id,
                "name": "m365pbx demo",
                "secrets": [{"value": self.app_secret}],
                "public_client": True,
                "delegated": ["Presence.Read.All", "User.Read.All", "offline_access"],
                "application": ["User.Read.All", "Presence.ReadWrite.All"],
            }],
            "users": [{"upn": upn, "display_name": f"Presence service {n}",
                       "password": self.password, "teams": True, "presence": "signed-in"}
                      for n, upn in enumerate(SERVICE_ACCOUNTS, 1)],
            "generate": {"users": people, "seed": 7, "disabled_share": 0.0},
        }]}
        self.directory.mkdir(parents=True, exist_ok=True)
        self.scenario_file.write_text(yaml.safe_dump(scenario, sort_keys=False))
        self.scenario_file.chmod(0o600)
        return self.scenario_file

    def write_config(self, *, sim_url: str, ca_file: Path, port: int) -> Path:
        """m365pbx pointed at the simulator, webhooks on loopback, one built-in API PBX."""
        config: dict[str, Any] = {
            "database": {"url": f"sqlite+aiosqlite:///{self.directory / 'm365pbx.db'}"},
            "secrets": {"key_file": str(self.directory / "secret.key")},
            "listen": {"host": "127.0.0.1", "port": port},
            "public_url": f"http://127.0.0.1:{port}",
            "admin": {"enabled": True},
            "microsoft": {"login_url": sim_url, "graph_url": sim_url, "ca_file": str(ca_file)},
            "tenants": [{
                "name": "contoso",
                "tenant_id": TENANT_ID,
                "credentials": [{"name": "graph", "client_id": self.app_id,
                                 "client_secret": self.app_secret,
                                 "permissions": ["presence.read", "presence.write",
                                                 "users.read"]}],
                "service_accounts": [{"upn": upn, "credential": "graph", "sign_in": "password",
                                      "password": self.password} for upn in SERVICE_ACCOUNTS],
            }],
            "pbx_connections": [{
                "name": CONNECTION, "kind": "api", "tenant": "contoso",
                "push_pbx_note_to_teams": True,
                "matching": {"rules": ["email=mail", "cn=displayName"]},
            }],
        }
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        self.config_file.chmod(0o600)
        return self.config_file
