"""The metric of Teams values m365pbx does not know counts every path a reading takes."""

from __future__ import annotations

from pathlib import Path

import yaml
from prometheus_client import generate_latest

from m365pbx.app import Service, ServiceOptions
from m365pbx.config import load_config
from m365pbx.graph.presence import PresenceReading
from m365pbx.store import SecretBox, generate_key

TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
APP_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"


def metric(service: Service, name: str) -> float:
    """One sample of the service's /metrics."""
    for line in generate_latest(service.registry).decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


async def test_a_polled_reading_with_a_new_microsoft_value_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "m365pbx.yaml"
    path.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"},
        "secrets": {"key_file": str(tmp_path / "secret.key")},
        "tenants": [{"name": "contoso", "tenant_id": TENANT_ID,
                     "credentials": [{"name": "graph", "client_id": APP_ID,
                                      "client_secret": "s", "permissions": ["presence.read"]}]}],
    }))
    service = Service(load_config(path, environ={}), SecretBox([generate_key()]),
                      ServiceOptions(serve_http=False))
    try:
        await service.prepare()
        poller = service.tenants["contoso"].parts.poller
        poller.feed([PresenceReading("u1", "AvailableSomewhere", "Hovering")])
        # Both the availability and the activity are values Microsoft added after us.
        assert metric(service, "m365pbx_unknown_teams_values_total") == 2
    finally:
        await service.close()
