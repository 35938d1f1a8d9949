"""docs/operations.md lists every metric the service exports, with its type and labels."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client import generate_latest

from m365pbx.app import Service, ServiceOptions
from m365pbx.config import load_config
from m365pbx.store import SecretBox, generate_key

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
ROW = re.compile(r"^\| `(m365pbx_[a-z_]+)` \| (counter|gauge|histogram) \|", re.M)


def documented() -> dict[str, str]:
    """Metric name (as in `# TYPE`, counters without `_total`) → type, from the docs table."""
    rows = {name: kind for name, kind in ROW.findall(DOC.read_text())}
    return {(name.removesuffix("_total") if kind == "counter" else name): kind
            for name, kind in rows.items()}


async def test_every_exported_metric_is_in_the_operations_table_and_no_other(
        tmp_path: Path) -> None:
    path = tmp_path / "m365pbx.yaml"
    path.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"},
        "secrets": {"key_file": str(tmp_path / "secret.key")},
        "tenants": [{"name": "contoso", "tenant_id": "9188040d-6c67-4c5b-b112-36a304b66dad",
                     "credentials": [{"name": "graph",
                                      "client_id": "6731de76-14a6-49ae-97bc-6eba6914391e",
                                      "client_secret": "s", "permissions": ["presence.read"]}]}],
        "pbx_connections": [{"name": "switchboard", "kind": "api", "tenant": "contoso"}],
    }))
    service = Service(load_config(path, environ={}), SecretBox([generate_key()]),
                      ServiceOptions(serve_http=False))
    try:
        await service.prepare()
        text = generate_latest(service.registry).decode()
    finally:
        await service.close()
    exported = {(name.removesuffix("_total") if kind == "counter" else name): kind
                for name, kind in re.findall(r"^# TYPE (m365pbx_[a-z_]+) (\w+)$", text,
                                             flags=re.M)}
    assert exported == documented()
