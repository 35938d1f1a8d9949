"""Sign-in and Graph through one proxy (issue 18, item 6): a real tinyproxy between m365pbx
and the simulator; its log shows the sign-in and the Graph connections.

Sign-in goes to the simulator as 127.0.0.1 and Graph as localhost (both name the same
server, whose certificate names both), so the proxy's log tells the two apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from m365pbx.core.presence import PbxPresence
from m365sim.clock import VirtualClock
from m365sim.server import RunningServer
from tests.e2e.harness import (
    eventually,
    free_port,
    in_teams,
    pbx_users,
    running,
    settings_for,
    switchboard,
)
from tests.e2e.test_teams_to_pbx import PEOPLE, shown

TINYPROXY = shutil.which("tinyproxy")
pytestmark = pytest.mark.skipif(TINYPROXY is None,
                                reason="tinyproxy is not installed (apt-get install tinyproxy)")


@dataclass
class Proxy:
    """A running tinyproxy: its URL and its log."""

    url: str
    log: Path

    def connects(self) -> list[str]:
        """The CONNECT requests the proxy carried, as `host:port`."""
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        # "CONNECT   Dec 06 ... Request (file descriptor 5): CONNECT 127.0.0.1:35691 HTTP/1.0"
        return [line.split("): CONNECT ", 1)[1].split()[0] for line in lines
                if "): CONNECT " in line]


async def _accepting(port: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if loop.time() > deadline:
            raise TimeoutError("tinyproxy did not start listening")
        await asyncio.sleep(0.05)


@pytest.fixture
async def proxy(sim_server: RunningServer, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Proxy]:
    """tinyproxy on a loopback port, allowed to CONNECT to the simulator's port only."""
    # The machine's own proxy variables must not decide this test; NO_PROXY often names
    # 127.0.0.1 and localhost, which would bypass the proxy under test.
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    port = free_port()
    log = tmp_path / "tinyproxy.log"
    config = tmp_path / "tinyproxy.conf"
    config.write_text("\n".join([
        f"Port {port}", "Listen 127.0.0.1", "Timeout 60", f'LogFile "{log}"',
        "LogLevel Connect", "MaxClients 50", "Allow 127.0.0.1",
        f"ConnectPort {sim_server.port}", "",
    ]))
    assert TINYPROXY is not None
    process = await asyncio.create_subprocess_exec(
        TINYPROXY, "-d", "-c", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await _accepting(port)
        yield Proxy(f"http://127.0.0.1:{port}", log)
    finally:
        process.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), timeout=10)
        if process.returncode is None:
            process.kill()
            await process.wait()


def through(server: RunningServer, proxy_url: str | None) -> dict[str, object]:
    """The `microsoft` settings: sign-in at 127.0.0.1, Graph at localhost, maybe a proxy."""
    microsoft: dict[str, object] = {"login_url": server.url,
                                    "graph_url": f"https://localhost:{server.port}",
                                    "ca_file": str(server.ca_file)}
    if proxy_url is not None:
        microsoft["proxy"] = proxy_url
    return microsoft


async def presence_flows(server: RunningServer, clock: VirtualClock, settings: object,
                         proxy: Proxy) -> list[str]:
    """Anna's Busy in Teams reaches the PBX (sign-in, directory and polling all worked).

    Returns the proxy's CONNECTs up to the first poll round, before the test itself acts
    in Teams (its own client may use HTTPS_PROXY too).
    """
    async with running(settings, clock) as service:  # type: ignore[arg-type]
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        poller = service.tenants["contoso"].parts.poller
        await eventually(lambda: len(service.hub.people()) == 2 and poller.rounds >= 1, clock)
        connects = proxy.connects()
        await in_teams(server, "anna@contoso.com",
                       {"preferred": {"availability": "Busy", "activity": "Busy"}})
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.BUSY, clock)
    return connects


async def test_the_configured_proxy_carries_sign_in_and_graph(
    sim_server: RunningServer, proxy: Proxy, clock: VirtualClock, tmp_path: Path,
) -> None:
    settings = settings_for(sim_server, tmp_path, microsoft=through(sim_server, proxy.url))
    connects = await presence_flows(sim_server, clock, settings, proxy)
    assert f"127.0.0.1:{sim_server.port}" in connects  # sign-in (Entra ID)
    assert f"localhost:{sim_server.port}" in connects  # Graph


async def test_https_proxy_from_the_environment_carries_both(
    sim_server: RunningServer, proxy: Proxy, clock: VirtualClock, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    settings = settings_for(sim_server, tmp_path, microsoft=through(sim_server, None))
    connects = await presence_flows(sim_server, clock, settings, proxy)
    assert f"127.0.0.1:{sim_server.port}" in connects
    assert f"localhost:{sim_server.port}" in connects


async def test_no_proxy_sends_a_host_around_the_proxy(
    sim_server: RunningServer, proxy: Proxy, clock: VirtualClock, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NO_PROXY", "localhost")
    settings = settings_for(sim_server, tmp_path, microsoft=through(sim_server, proxy.url))
    connects = await presence_flows(sim_server, clock, settings, proxy)
    assert f"127.0.0.1:{sim_server.port}" in connects
    assert f"localhost:{sim_server.port}" not in connects  # Graph went direct
