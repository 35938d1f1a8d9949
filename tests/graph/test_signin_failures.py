"""Signing in when Entra ID cannot be reached, hangs or does not know the tenant: one
SignInError with the reason in words, never requests' or MSAL's own exceptions."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from m365pbx.graph.auth import AppTokenSource, Authority, ClientCredential
from m365pbx.graph.errors import AppNotFound, SignInUnavailable
from m365sim.faults import FaultRule
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID, APP_SECRET, TENANT_ID


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def source(host: str, tenant: str = "contoso.com", **kwargs: object) -> AppTokenSource:
    """An app token source for the test app at `host`."""
    authority = Authority(tenant, host=host, **kwargs)  # type: ignore[arg-type]
    return AppTokenSource(authority, ClientCredential(APP_ID, secret=APP_SECRET))


async def test_an_unreachable_login_host_is_sign_in_unavailable() -> None:
    port = closed_port()
    with pytest.raises(SignInUnavailable) as caught:
        await source(f"https://127.0.0.1:{port}").token()
    assert caught.value.describe().startswith(
        f"cannot reach Entra ID at 127.0.0.1:{port}: connection failed.")
    assert "m365pbx retries with backoff" in caught.value.describe()


async def test_a_login_host_that_never_answers_is_given_up_on(silent_port: int) -> None:
    tokens = source(f"https://127.0.0.1:{silent_port}", timeout=(0.5, 0.5))
    with pytest.raises(SignInUnavailable) as caught:
        await asyncio.wait_for(tokens.token(), timeout=30)
    assert "no answer in time" in caught.value.describe()


async def test_an_unknown_tenant_is_explained(sim_server: RunningServer, tmp_path: Path) -> None:
    tokens = source(sim_server.url, "0b2ec3a1-6f0e-4c7b-9a53-8d1f2f8e4c11",
                    verify=str(sim_server.ca_file))
    with pytest.raises(AppNotFound) as caught:
        await tokens.token()
    assert caught.value.aadsts == 90002
    assert "the tenant does not exist (AADSTS90002)" in caught.value.describe()


async def test_entra_busy_says_how_long_to_wait(sim_server: RunningServer, sim: Simulator) -> None:
    sim.faults.add_fault(FaultRule(status=503, path_prefix=f"/{TENANT_ID}/oauth2/v2.0/token",
                                   count=1, retry_after_s=30))
    tokens = source(sim_server.url, TENANT_ID, verify=str(sim_server.ca_file))
    with pytest.raises(SignInUnavailable) as caught:
        await tokens.token()
    assert caught.value.retry_after == 30
    assert "m365pbx retries with backoff" in caught.value.describe()
