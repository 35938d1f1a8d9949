"""One database, one installation (issue 25): a second `m365pbx serve` on the same SQLite
file is refused with the first node named, and the first runs on; a node killed with
`kill -9` leaves no claim behind. On PostgreSQL a single node and the nodes of a cluster
never share a database; the nodes of a cluster do. A port already taken is a clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from m365pbx.core.status import PartState
from m365pbx.service.database_claim import DatabaseClaim, DatabaseInUse
from m365pbx.store.db import create_engine
from m365sim.server import RunningServer
from tests.cli.test_serve_reload import write_config
from tests.e2e.harness import free_port
from tests.sim.conftest import APP_SECRET
from tests.store.conftest import new_pg_database, postgres_available  # noqa: F401 (fixtures)

M365PBX = str(Path(sys.executable).with_name("m365pbx"))
WALL_LIMIT = 90.0  # seconds; a start-up takes a few


@pytest.fixture
def pg_url(new_pg_database: Callable[[], str]) -> str:  # noqa: F811 (fixture)
    """An empty PostgreSQL database of this test's own."""
    return new_pg_database()


def node_config(tmp_path: Path, sim_server: RunningServer, port: int) -> Path:
    """A node's configuration: SQLite beside it, one tenant on the simulator, the API."""
    config = tmp_path / "m365pbx.yaml"
    write_config(config, tmp_path, sim_server, port, APP_SECRET)
    return config


def environment(**extra: str) -> dict[str, str]:
    """The process environment without the caller's M365PBX_ settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("M365PBX_")}
    env.update(extra)
    return env


@contextlib.asynccontextmanager
async def serving(config: Path, **env: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """`m365pbx serve` running until it said it listens; killed at the end."""
    process = await asyncio.create_subprocess_exec(
        M365PBX, "serve", "-c", str(config), stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL, env=environment(**env), cwd=config.parent)
    assert process.stderr is not None
    try:
        async with asyncio.timeout(WALL_LIMIT):
            while b"m365pbx listening on" not in (line := await process.stderr.readline()):
                assert line, "m365pbx ended before it listened"
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        with contextlib.suppress(ProcessLookupError):
            await process.wait()


async def refused(config: Path, **env: str) -> tuple[int, str]:
    """Run `m365pbx serve` that is expected to end by itself: its exit code and stderr."""
    process = await asyncio.create_subprocess_exec(
        M365PBX, "serve", "-c", str(config), stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL, env=environment(**env), cwd=config.parent)
    try:
        async with asyncio.timeout(WALL_LIMIT):
            _, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_a_second_node_on_one_sqlite_database_is_refused_and_the_first_runs_on(
    sim_server: RunningServer, tmp_path: Path,
) -> None:
    port = free_port()
    config = node_config(tmp_path, sim_server, port)
    async with serving(config) as first:
        code, err = await refused(config, M365PBX_LISTEN__PORT=str(free_port()))
        assert code == 2, err
        assert f"another m365pbx node runs on the SQLite database {tmp_path / 'state.db'}" in err
        assert f"process {first.pid} on {socket.gethostname()}" in err
        assert "cluster.enabled" in err and "Traceback" not in err
        assert "listening" not in err  # it never claimed to run
        async with httpx.AsyncClient() as client:
            health = (await client.get(f"http://127.0.0.1:{port}/healthz")).json()
        claim = next(p for p in health["parts"] if p["part"] == "node/database_claim")
        assert claim["state"] == "ok"
        first.send_signal(signal.SIGKILL)
        await first.wait()
    # The kernel dropped the killed node's claim: the next one starts.
    async with serving(config, M365PBX_LISTEN__PORT=str(free_port())) as second:
        assert second.returncode is None


async def test_a_port_already_taken_is_said_in_one_line(
    sim_server: RunningServer, tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = await refused(node_config(tmp_path, sim_server, port))
    assert code == 2, err
    assert f"cannot listen on 127.0.0.1 port {port}: Address already in use" in err
    assert "Traceback" not in err and "listening" not in err
    # Refused before anything was written: the claim went with it, the next start works.
    async with serving(node_config(tmp_path, sim_server, free_port())):
        pass


async def test_single_and_cluster_nodes_never_share_a_postgresql_database(
    pg_url: str,
) -> None:
    alone = DatabaseClaim(pg_url, node="gw-alone", cluster=False)
    await alone.take()
    try:
        for cluster, says in ((False, "another m365pbx node runs on the database"),
                              (True, "a single m365pbx node (without cluster.enabled)")):
            other = DatabaseClaim(pg_url, node="gw-2", cluster=cluster)
            with pytest.raises(DatabaseInUse, match=re.escape(says)) as caught:
                await other.take()
            assert "m365pbx node gw-alone from 127.0.0.1 since" in str(caught.value)
            assert not other.held
            await other.release()
    finally:
        await alone.release()

    members = [DatabaseClaim(pg_url, node=f"gw-{n}", cluster=True) for n in range(2)]
    for member in members:
        await member.take()  # the nodes of a cluster share it
    try:
        with pytest.raises(DatabaseInUse, match=r"gw-0 from .*, m365pbx node gw-1 from"):
            await DatabaseClaim(pg_url, node="gw-alone", cluster=False).take()
    finally:
        for member in members:
            await member.release()
    # Released: a single node may have the database now.
    last = DatabaseClaim(pg_url, node="gw-alone", cluster=False)
    await last.take()
    await last.release()


async def test_a_claim_lost_with_its_connection_is_taken_again(
    pg_url: str,
) -> None:
    claim = DatabaseClaim(pg_url, node="gw-1", cluster=False)
    await claim.take()
    await claim.check()
    assert claim.status()[0].state is PartState.OK
    admin = create_engine(pg_url)
    intruder = DatabaseClaim(pg_url, node="gw-2", cluster=False)
    try:
        # The database server ends the claim's session (a restart, an admin, a network cut)
        # and another single node takes the database before gw-1 looks again.
        await end_sessions_of(admin, "gw-1")
        await intruder.take()
        await claim.check()
        part = claim.status()[0]
        assert part.state is PartState.DEGRADED
        assert "lost the claim on the database" in (part.error or "")
        assert "m365pbx node gw-2" in (part.error or "") and part.fix
        await intruder.release()
        # Free again: gw-1 takes it back at its next look, and holds it.
        await claim.check()
        assert claim.status()[0].state is PartState.OK
        with pytest.raises(DatabaseInUse, match="m365pbx node gw-1"):
            await intruder.take()
    finally:
        await intruder.release()
        await claim.release()
        await admin.dispose()


async def end_sessions_of(engine: AsyncEngine, node: str) -> None:
    """What a database restart does to a node's claim: its session ends."""
    async with engine.connect() as connection:
        await connection.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = :name"), {"name": f"m365pbx node {node}"})
        await connection.commit()
