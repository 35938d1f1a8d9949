"""`m365pbx check` on an Asterisk connection: it logs in and names what manager.conf lacks."""

from __future__ import annotations

import pytest

from m365pbx.check.findings import Status
from m365pbx.check.pbx import asterisk_login
from m365pbx.config.connections import AsteriskConnection
from tests.pbx.asterisk.server import AMI_SECRET, AsteriskServer


def config(server: AsteriskServer, user: str, secret: str) -> AsteriskConnection:
    """A connection entry as the YAML file would give it."""
    return AsteriskConnection.model_validate({
        "name": "office-asterisk", "kind": "asterisk", "tenant": "contoso",
        "settings": {"host": "127.0.0.1", "port": server.ami_port, "username": user,
                     "secret": secret}})


@pytest.mark.parametrize(("user", "secret", "words"), [
    ("m365pbx", AMI_SECRET, None),
    ("m365pbx", "nope", "refused the AMI login of user 'm365pbx'"),
    ("callonly", "callonly-pw", "add system to its write="),
])
async def test_the_check_logs_in_and_names_missing_permissions(
    asterisk: AsteriskServer, user: str, secret: str, words: str | None,
) -> None:
    finding = await asterisk_login(config(asterisk, user, secret), wait_s=10)
    text = f"{finding.message} {finding.fix}"
    if words is None:
        assert finding.status is Status.OK, text
        assert "accepts our login" in finding.message
    else:
        assert finding.status is Status.FAIL
        assert words in finding.message
        assert "manager.conf" in text
    assert secret not in text
