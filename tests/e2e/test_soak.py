"""The chaos soak of bench/soak.py in its 3-minute version (issue 25): three real nodes
on PostgreSQL behind a balancer, a simulated Microsoft 365 that loses, duplicates and
reorders notifications and answers 429 and 5xx, a stream of changes in Teams and of
calls through the presence API, a node killed every minute, and the Kamailio of the
tenant's SIP connection SIGKILLed twice. Afterwards no person's PBX side differs from
Teams, Kamailio shows everyone as m365pbx published them, no presence session of ours
is left in Teams, and no subscription was ever made twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.chaos import SoakOptions, soak
from tests.store.conftest import new_pg_database, postgres_available  # noqa: F401 (fixtures)

pytestmark = pytest.mark.postgres


@pytest.fixture
def cluster_url(new_pg_database: Any) -> str:  # noqa: F811 - the imported fixture
    """An empty PostgreSQL database the nodes share (each migrates it at start)."""
    return str(new_pg_database())


async def test_three_minutes_of_chaos_leave_nothing_wrong(tmp_path: Path,
                                                         cluster_url: str) -> None:
    options = SoakOptions(minutes=3, people=500, polled=50, nodes=3, kill_every_s=60,
                          changes_per_second=10, calls_per_second=3, reconcile_s=30,
                          sip_people=100, kamailio_kills=2, lease="3s")
    result = await soak(options, cluster_url, tmp_path)
    print(result)
    assert len(result.node_kills) >= 2  # the chaos did happen
    assert len(result.kamailio_kills) == 2
    assert result.takeovers >= 1
    assert result.changes > 500 and result.calls > 100
    assert any(hits for hits in result.faults_hit.values())
    assert result.differing == []
    assert result.sip_differing == []
    assert result.orphaned_sessions == 0
    assert result.conflicts == []
