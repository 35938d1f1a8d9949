"""`directory.group_ids`: only members of those groups take part (their membership is read
from Graph at each full directory sync)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from m365pbx.config import Settings, load_config
from m365sim.clock import VirtualClock
from m365sim.model import Tenant
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import eventually, pbx_users, running, settings_for, switchboard
from tests.e2e.test_teams_to_pbx import PEOPLE
from tests.sim.conftest import APP_ID


def only_group(server: RunningServer, tmp_path: Path, group_id: str) -> Settings:
    """Polling-mode settings whose tenant takes only the members of `group_id`."""
    settings_for(server, tmp_path, accounts=[])  # writes m365pbx.yaml, amended here
    path = tmp_path / "m365pbx.yaml"
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    data["tenants"][0]["directory"] = {"group_ids": [group_id]}
    path.write_text(yaml.safe_dump(data))
    return load_config(path, environ={})


def sales(tenant: Tenant) -> str:
    """The id of Contoso's Sales group (Anna is its member, Ben is not)."""
    return next(g.id for g in tenant.groups.values() if g.display_name == "Sales")


async def test_only_the_groups_members_become_people(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    tenant.apps[APP_ID].application_roles.add("GroupMember.Read.All")
    async with running(only_group(sim_server, tmp_path, sales(tenant)), clock) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        directory = service.tenants["contoso"].parts.directory
        await eventually(lambda: directory.status.last_success is not None
                         and directory.status.summaries.get("switchboard") is not None, clock)
        assert [p.key for p in service.hub.people()] == ["anna"]
        assert directory.status.last_error is None


async def test_without_permission_to_read_the_groups_the_sync_says_which_is_missing(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    async with running(only_group(sim_server, tmp_path, sales(tenant)), clock) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        directory = service.tenants["contoso"].parts.directory
        await eventually(lambda: directory.status.last_error is not None, clock)
        error = directory.status.last_error or ""
        assert "directory.group_ids" in error and "GroupMember.Read.All" in error
        assert service.hub.people() == []
