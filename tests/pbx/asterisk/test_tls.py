"""The AMI over TLS against a real Asterisk: it works with the right CA and says why it does not
with another one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.asterisk import tls_context
from m365pbx.pbx.base import ConnectionState, PbxUser
from m365sim.tls import TlsFiles, ensure_certificates
from tests.pbx.asterisk.conftest import PEOPLE, USERS, start_server
from tests.pbx.asterisk.helpers import connection_for, until
from tests.pbx.asterisk.server import AsteriskConfig, AsteriskServer, phones


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA and a server certificate for 127.0.0.1."""
    return ensure_certificates(tmp_path_factory.mktemp("ami-tls"))


@pytest.fixture(scope="module")
def tls_asterisk(asterisk_root: Path, certificates: TlsFiles) -> Iterator[AsteriskServer]:
    """An Asterisk whose AMI also listens with TLS."""
    yield from start_server(asterisk_root, AsteriskConfig(
        phones(*PEOPLE), USERS, tls=(certificates.cert_file, certificates.key_file)))


async def test_presence_over_tls(tls_asterisk: AsteriskServer, certificates: TlsFiles) -> None:
    connection = connection_for(tls_asterisk, port=tls_asterisk.ami_tls_port,
                                tls=tls_context(certificates.ca_file))
    await connection.start()
    try:
        await until(lambda: connection.status().state is ConnectionState.CONNECTED)
        await connection.set_presence(PbxUser("2002", {"extension": "2002"}),
                                      PbxPresence.DND, "")
        assert tls_asterisk.getvar("DEVICE_STATE(Custom:2002-teams)") == "BUSY"
    finally:
        await connection.stop()


async def test_a_certificate_from_another_ca_is_named(
    tls_asterisk: AsteriskServer, tmp_path: Path,
) -> None:
    other = ensure_certificates(tmp_path / "other")
    connection = connection_for(tls_asterisk, port=tls_asterisk.ami_tls_port,
                                tls=tls_context(other.ca_file))
    await connection.start()
    try:
        await until(lambda: connection.status().state is ConnectionState.DEGRADED)
        error = connection.status().last_error or ""
        assert "TLS to the AMI" in error and "CERTIFICATE_VERIFY_FAILED" in error
    finally:
        await connection.stop()
