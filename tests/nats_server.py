"""The NATS server with JetStream the NATS transport tests use (127.0.0.1:4222, started on
this kind of machine and by .ci/run): skipped without it, except under CI, where they fail
(as the PostgreSQL variants do, tests/store/conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator

import nats
import pytest

NATS_URL = "nats://127.0.0.1:4222"


async def quiet(exc: Exception) -> None:
    """nats-py prints connection errors unless given a callback."""


def _nats_problem() -> str | None:
    async def probe() -> None:
        client = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0,
                                    error_cb=quiet)
        try:
            await client.jetstream().account_info()
        finally:
            await client.close()

    try:
        asyncio.run(asyncio.wait_for(probe(), 10))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def nats_available() -> None:
    """Skip (or under CI, fail) when no NATS server with JetStream answers on 4222."""
    problem = _nats_problem()
    if problem is None:
        return
    message = f"NATS with JetStream on {NATS_URL} is not reachable ({problem})"
    if "CI" in os.environ:
        pytest.fail(f"{message}; CI must prove the NATS transport works", pytrace=False)
    pytest.skip(f"{message}: skipping the NATS transport tests")


@pytest.fixture
def nats_prefix(nats_available: None) -> Iterator[str]:
    """A test's own stream names on the shared server; its streams are deleted afterwards."""
    name = f"t{secrets.token_hex(4)}"
    yield name

    async def delete() -> None:
        client = await nats.connect(NATS_URL, error_cb=quiet)
        try:
            js = client.jetstream()
            for stream in await js.streams_info():
                if stream.config.name and stream.config.name.startswith(f"{name}_"):
                    with contextlib.suppress(Exception):
                        await js.delete_stream(stream.config.name)
        finally:
            await client.close()

    asyncio.run(delete())
