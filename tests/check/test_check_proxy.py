"""`m365pbx check` through the configured proxy: a real tinyproxy carries every request."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from m365pbx.check import Status, exit_status
from m365sim.clock import VirtualClock
from m365sim.server import RunningServer
from tests.check.conftest import about, check, write_config
from tests.e2e.harness import free_port
from tests.e2e.test_proxy import TINYPROXY, Proxy, _accepting

pytestmark = pytest.mark.skipif(TINYPROXY is None,
                                reason="tinyproxy is not installed (apt-get install tinyproxy)")


@pytest.fixture
async def tinyproxy(server: RunningServer, tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Proxy]:
    """tinyproxy on a loopback port, allowed to CONNECT to the simulator's port only."""
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    port = free_port()
    log = tmp_path / "tinyproxy.log"
    config = tmp_path / "tinyproxy.conf"
    config.write_text("\n".join([
        f"Port {port}", "Listen 127.0.0.1", "Timeout 60", f'LogFile "{log}"',
        "LogLevel Connect", "MaxClients 50", "Allow 127.0.0.1",
        f"ConnectPort {server.port}", "",
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


async def test_the_hosts_and_sign_ins_go_through_the_proxy(
        server: RunningServer, check_clock: VirtualClock, tmp_path: Path,
        tinyproxy: Proxy) -> None:
    path = write_config(server, tmp_path, microsoft={
        "login_url": server.url, "graph_url": server.url, "ca_file": str(server.ca_file),
        "proxy": tinyproxy.url})
    findings = await check(path, check_clock)
    assert exit_status(findings) == 0, [f for f in findings if f.status is not Status.OK]
    assert len(about(findings, f"answers through the proxy {tinyproxy.url}")) == 2
    # Every request went through it: the host probes, the app's and the account's sign-in.
    assert tinyproxy.connects().count(f"127.0.0.1:{server.port}") >= 3
