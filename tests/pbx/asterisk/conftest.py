"""Fixtures for the Asterisk tests: the cached sid chroot and real Asterisk servers in it.

Without root, mmdebstrap or a reachable Debian mirror the tests are skipped with a clear
message, except under CI (the `CI` variable), where they fail: CI must prove them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pbx.asterisk.chroot import ChrootUnavailable, ensure_chroot
from tests.pbx.asterisk.server import (
    AMI_SECRET,
    AMI_USER,
    AmiUser,
    AsteriskConfig,
    AsteriskServer,
    phones,
)

PEOPLE = (("2001", "Anna Schmidt"), ("2002", "Ben Weber"), ("2003", "Carla Rossi"))
# Besides the full user: one that may not use AstDB or list endpoints (write=call), and one
# that gets no call events (read=system).
USERS = [AmiUser(AMI_USER, AMI_SECRET), AmiUser("callonly", "callonly-pw", "call", "call"),
         AmiUser("deaf", "deaf-pw", read="system", write="call,system")]


@pytest.fixture(scope="session")
def asterisk_root() -> Path:
    """The chroot with Asterisk 22 (built on first use, then cached); skip/fail if impossible."""
    try:
        root, took = ensure_chroot()
    except ChrootUnavailable as exc:
        message = f"Asterisk tests need the sid chroot: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    if took:
        print(f"built the Asterisk chroot in {took:.1f} s")
    return root


def start_server(root: Path, config: AsteriskConfig) -> Iterator[AsteriskServer]:
    """A started server, removed after the test (its log tail shown if it failed to start)."""
    server = AsteriskServer(root, config)
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="module")
def asterisk(asterisk_root: Path) -> Iterator[AsteriskServer]:
    """An Asterisk shared by a test module: phones 2001-2003 without SIP contacts."""
    yield from start_server(asterisk_root, AsteriskConfig(phones(*PEOPLE), USERS))


@pytest.fixture
def own_asterisk(asterisk_root: Path) -> Iterator[AsteriskServer]:
    """An Asterisk for one test alone (restarts, wrong secrets)."""
    yield from start_server(asterisk_root, AsteriskConfig(phones(*PEOPLE), USERS))
