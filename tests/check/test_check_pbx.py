"""`m365pbx check` and PBX connections: a real Kamailio answers OPTIONS; silence is a failure."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from m365pbx.check.findings import Status
from m365pbx.check.pbx import check_connections
from m365pbx.config import Settings
from tests.pbx.sip.conftest import kamailio, sip_tools
from tests.pbx.sip.kamailio import KamailioServer

__all__ = ["kamailio", "sip_tools"]  # fixtures used below


def _settings(server: str, transport: str = "udp") -> Settings:
    return Settings.model_validate({
        "tenants": [{"name": "contoso", "tenant_id": "contoso.com", "credentials": [
            {"name": "graph", "client_id": "b2c5e8f1-0a3d-4b6e-9c2f-5d8a1e4b7c30",
             "client_secret": "x", "permissions": ["users.read"]}]}],
        "pbx_connections": [
            {"name": "office-sip", "kind": "sip", "tenant": "contoso",
             "settings": {"server": server, "transport": transport, "domain": "127.0.0.1"}},
            {"name": "switchboard", "kind": "api", "tenant": "contoso"},
        ]})


@pytest.fixture
def silent_udp_port() -> Iterator[int]:
    """A UDP port that receives but never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_sip_server_that_answers_options(kamailio: KamailioServer,
                                                 transport: str) -> None:
    findings = await check_connections(_settings(f"127.0.0.1:{kamailio.port}", transport), 5.0)
    assert [(f.subject, f.status) for f in findings] == [
        ("connection office-sip", Status.OK), ("connection switchboard", Status.OK)]
    assert findings[0].message == (f"the SIP presence server at 127.0.0.1:{kamailio.port} over "
                                   f"{transport.upper()} answers OPTIONS")


async def test_a_sip_server_that_does_not_answer(silent_udp_port: int) -> None:
    findings = await check_connections(_settings(f"127.0.0.1:{silent_udp_port}"), 1.0)
    assert findings[0].status is Status.FAIL
    assert f"presence server 127.0.0.1:{silent_udp_port} does not answer" in findings[0].message
    assert "settings.server" in findings[0].fix and "firewall" in findings[0].fix
    assert "nothing to reach" in findings[1].message
