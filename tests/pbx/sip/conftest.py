"""Fixtures for the SIP tests: real Kamailio servers and helpers to build connections.

Without kamailio, its presence modules or sipp the integration tests are skipped with a
clear message, except under CI (the `CI` variable), where they fail: CI must prove them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pbx.sip.kamailio import KamailioServer, missing_tools

INSTALL = "apt-get install -y kamailio kamailio-presence-modules sip-tester"
GATEWAY_PASSWORD = 'gw:P\\a"ss wörd!'
ACCOUNTS = {"gateway": GATEWAY_PASSWORD, "carol": "carol-pw:1", "dave": "dave-pw"}


@pytest.fixture(scope="session")
def sip_tools() -> None:
    """Skip (or fail under CI) when the real SIP peers are not installed."""
    missing = missing_tools()
    if missing:
        message = f"SIP integration tests need {', '.join(missing)}: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _server(root: Path, **kwargs: object) -> Iterator[KamailioServer]:
    server = KamailioServer(root, **kwargs)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def kamailio(sip_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KamailioServer]:
    """A Kamailio presence server shared by a test module (tests use distinct people)."""
    yield from _server(tmp_path_factory.mktemp("kamailio"))


@pytest.fixture(scope="module")
def kamailio_auth(
    sip_tools: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KamailioServer]:
    """A Kamailio that digest-authenticates PUBLISH and SUBSCRIBE (401, MD5, qop=auth)."""
    yield from _server(tmp_path_factory.mktemp("kamailio-auth"), accounts=ACCOUNTS)


@pytest.fixture
def own_kamailio(sip_tools: None, tmp_path: Path) -> Iterator[KamailioServer]:
    """A Kamailio for one test alone (restarts, crashes)."""
    yield from _server(tmp_path / "kamailio")
