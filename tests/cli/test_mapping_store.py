"""Mappings stored per tenant and PBX connection, through `m365pbx mapping ... --connection`."""

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m365pbx.cli.app import app
from m365pbx.store import PbxConnectionSpec, Store, load_secret_box

CONFIG = """
database:
  url: sqlite+aiosqlite:///{db}
secrets:
  key_file: {key}
tenants:
  - name: contoso
    tenant_id: 9188040d-6c67-4c5b-b112-36a304b66dad
    credentials:
      - name: graph
        client_id: 6731de76-14a6-49ae-97bc-6eba6914391e
        client_secret: "s3cr3t-value"
        permissions: [presence.read]
    mapping:
      teams_to_pbx:
        - {{availability: BeRightBack, pbx: busy}}
pbx_connections:
  - name: office
    kind: api
    tenant: contoso
    mapping:
      teams_to_pbx:
        - {{availability: Away, pbx: online}}
"""


@pytest.fixture
def config(tmp_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("M365PBX_SECRET_KEY", raising=False)
    path = tmp_path / "m365pbx.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "state.db", key=tmp_path / "secret.key"))
    result = cli.invoke(app, ["config", "apply", "--config", str(path)])
    assert result.exit_code == 0, result.output
    return path


def explain(cli: CliRunner, config: Path, availability: str, connection: str) -> str:
    result = cli.invoke(app, ["mapping", "explain", "--availability", availability,
                              "--connection", connection, "--config", str(config)])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()[0]


def test_file_declared_tenant_and_connection_mappings_apply(cli: CliRunner, config: Path) -> None:
    assert explain(cli, config, "BeRightBack", "office") == "busy"  # tenant overlay
    assert explain(cli, config, "Away", "office") == "online"  # connection overlay
    assert explain(cli, config, "DoNotDisturb", "office") == "dnd"  # default


def test_a_file_declared_connection_cannot_be_changed_from_the_cli(
    cli: CliRunner, config: Path, tmp_path: Path
) -> None:
    overlay = tmp_path / "o.yaml"
    overlay.write_text("teams_to_pbx:\n  - {availability: Away, pbx: away}\n")
    result = cli.invoke(app, ["mapping", "import", str(overlay), "--connection", "office",
                              "--config", str(config)])
    assert result.exit_code == 2
    assert "declared in the configuration file" in result.output
    assert explain(cli, config, "Away", "office") == "online"


def test_import_stores_the_mapping_of_a_store_managed_connection(
    cli: CliRunner, config: Path, tmp_path: Path
) -> None:
    async def create_connection() -> None:
        store = Store.open(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}",
                           load_secret_box(key_file=tmp_path / "secret.key"))
        async with store.transaction() as tx:
            await tx.pbx_connections.create(
                PbxConnectionSpec(name="branch", kind="api", settings={"tenant": "contoso"})
            )
        await store.close()

    asyncio.run(create_connection())
    assert explain(cli, config, "Busy", "branch") == "busy"
    overlay = tmp_path / "branch.yaml"
    overlay.write_text("teams_to_pbx:\n  - {availability: Busy, pbx: dnd}\n")
    result = cli.invoke(app, ["mapping", "import", str(overlay), "--connection", "branch",
                              "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "stored as the mapping of PBX connection 'branch'" in result.output
    assert explain(cli, config, "Busy", "branch") == "dnd"
    assert explain(cli, config, "BeRightBack", "branch") == "busy"  # the tenant's still applies


def test_an_invalid_document_is_not_stored(cli: CliRunner, config: Path, tmp_path: Path) -> None:
    overlay = tmp_path / "bad.yaml"
    overlay.write_text("teams_to_pbx:\n  - {availability: Bussy, pbx: dnd}\n")
    result = cli.invoke(app, ["mapping", "import", str(overlay), "--tenant", "contoso",
                              "--config", str(config)])
    assert result.exit_code == 2
    assert explain(cli, config, "BeRightBack", "office") == "busy"


def test_unknown_connection_is_named(cli: CliRunner, config: Path) -> None:
    result = cli.invoke(app, ["mapping", "show", "--connection", "nope", "--config", str(config)])
    assert result.exit_code == 2
    assert "no PBX connection 'nope' (known: office)" in result.output
