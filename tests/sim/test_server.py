"""run_server: the simulator on a real loopback port, with its own CA, in the test's loop."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from m365sim.server import RunningServer, run_server
from m365sim.simulator import Simulator
from m365sim.tls import ensure_certificates
from tests.sim.conftest import TENANT_ID, app_token


def trusting(ca_file: Path | None) -> ssl.SSLContext:
    assert ca_file is not None
    return ssl.create_default_context(cafile=str(ca_file))


def discovery_path() -> str:
    return f"/{TENANT_ID}/v2.0/.well-known/openid-configuration"


async def test_https_with_the_printed_ca_and_the_base_url_set(
    sim_server: RunningServer, sim: Simulator,
) -> None:
    assert sim_server.url == f"https://127.0.0.1:{sim_server.port}"
    assert sim.base_url == sim_server.url
    async with httpx.AsyncClient(base_url=sim_server.url,
                                 verify=trusting(sim_server.ca_file)) as http:
        response = await http.get(discovery_path())
    assert response.status_code == 200
    assert response.json()["token_endpoint"].startswith(sim_server.url + "/")
    # No uvicorn Server header; Date comes from the simulator's clock.
    assert "server" not in response.headers
    assert response.headers["date"].startswith("Mon, 05 Jan 2026")


async def test_clients_without_the_ca_are_refused(sim_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=sim_server.url) as http:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await http.get(discovery_path())


async def test_certificate_names_every_loopback_name(
    sim_server: RunningServer, tmp_path: Path,
) -> None:
    chain = (tmp_path / "tls" / "server.pem").read_bytes()
    cert = x509.load_pem_x509_certificates(chain)[0]
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1",
                                                                          "::1"}
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    url = f"https://localhost:{sim_server.port}"
    async with httpx.AsyncClient(base_url=url, verify=trusting(sim_server.ca_file)) as http:
        assert (await http.get(discovery_path())).status_code == 200


async def test_the_background_work_runs_while_serving_and_stops_after(
    sim: Simulator, tmp_path: Path,
) -> None:
    def running() -> set[str]:
        return {task.get_name() for task in asyncio.all_tasks()}

    async with run_server(sim, cert_dir=tmp_path) as server:
        assert {"m365sim-run", "m365sim-server"} <= running()
        port = server.port
    assert not {"m365sim-run", "m365sim-server"} & running()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


async def test_plain_http_when_asked(sim: Simulator) -> None:
    async with run_server(sim, tls=False) as server:
        assert server.ca_file is None and server.url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get(discovery_path())).status_code == 200


async def test_ipv6_loopback(sim: Simulator, tmp_path: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    async with run_server(sim, host="::1", cert_dir=tmp_path) as server:
        assert server.url == f"https://[::1]:{server.port}"
        async with httpx.AsyncClient(base_url=server.url,
                                     verify=trusting(server.ca_file)) as http:
            assert (await http.get(discovery_path())).status_code == 200


async def test_a_busy_port_is_a_clear_error(sim: Simulator) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1 port {port}"):
            async with run_server(sim, port=port, tls=False):
                pass


async def test_temporary_certificates_are_removed_after(sim: Simulator) -> None:
    async with run_server(sim) as server:
        assert server.ca_file is not None and server.ca_file.exists()
        ca_file = server.ca_file
    assert not ca_file.exists()


def test_the_ca_survives_restarts_in_the_same_directory(tmp_path: Path) -> None:
    first = ensure_certificates(tmp_path)
    ca = first.ca_file.read_bytes()
    server_cert = first.cert_file.read_bytes()
    second = ensure_certificates(tmp_path, ["sim.example"])
    assert second.ca_file.read_bytes() == ca
    assert second.cert_file.read_bytes() != server_cert
    leaf = x509.load_pem_x509_certificates(second.cert_file.read_bytes())[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "sim.example" in names.get_values_for_type(x509.DNSName)
    assert oct(second.key_file.stat().st_mode & 0o777) == "0o600"


async def test_a_client_hanging_up_mid_body_is_noted_not_an_error(
    sim_server: RunningServer, sim: Simulator, caplog: pytest.LogCaptureFixture,
) -> None:
    # A node killed while it posts (the chaos soak): the simulator notes it and goes on.
    caplog.set_level(logging.INFO, logger="m365sim")
    _reader, writer = await asyncio.open_connection(
        "127.0.0.1", sim_server.port, ssl=trusting(sim_server.ca_file),
        server_hostname="127.0.0.1")
    writer.write(b"POST /v1.0/communications/getPresencesByUserId HTTP/1.1\r\n"
                 b"Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer " + app_token(sim).encode() +
                 b"\r\nContent-Length: 1000\r\n\r\n{\"ids\": [")
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    for _ in range(200):
        if any("client disconnected" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.02)
    assert any("client disconnected during POST" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    async with httpx.AsyncClient(base_url=sim_server.url,
                                 verify=trusting(sim_server.ca_file)) as http:
        assert (await http.get(discovery_path())).status_code == 200
