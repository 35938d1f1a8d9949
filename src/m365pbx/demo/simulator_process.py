"""The simulator as a separate process: m365pbx talks to it only over HTTP, as to Microsoft."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

STARTUP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class SimulatorProcess:
    """A running `m365sim serve`: where it listens and the CA to trust."""

    url: str
    ca_file: Path
    process: asyncio.subprocess.Process


def _command() -> list[str]:
    script = shutil.which("m365sim", path=str(Path(sys.executable).parent)) or shutil.which(
        "m365sim")
    if script:
        return [script]
    return [sys.executable, "-m", "m365sim.cli"]


@contextlib.asynccontextmanager
async def simulator(scenario: Path, cert_dir: Path, *, port: int = 0,
                    latency_ms: tuple[int, int] = (300, 1500)) -> AsyncIterator[SimulatorProcess]:
    """Start `m365sim serve` with a scenario; stop it when the block ends."""
    command = [*_command(), "serve", "--host", "127.0.0.1", "--port", str(port),
               "--scenario", str(scenario), "--cert-dir", str(cert_dir),
               "--latency-ms", f"{latency_ms[0]},{latency_ms[1]}", "--allow-http-webhooks"]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=environment)
    try:
        url, ca_file = await asyncio.wait_for(_announced(process), STARTUP_TIMEOUT_S)
        drain = asyncio.create_task(_drain(process))
        yield SimulatorProcess(url, ca_file, process)
        drain.cancel()
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _announced(process: asyncio.subprocess.Process) -> tuple[str, Path]:
    assert process.stdout is not None
    url: str | None = None
    seen: list[str] = []
    while True:
        line = (await process.stdout.readline()).decode(errors="replace")
        if not line:
            raise RuntimeError("the simulator stopped while starting:\n" + "".join(seen[-20:]))
        seen.append(line)
        if match := re.match(r"m365sim serving (\S+)", line):
            url = match.group(1)
        if (match := re.match(r"CA certificate \(trust it in clients\): (.+)", line)) and url:
            return url, Path(match.group(1).strip())


async def _drain(process: asyncio.subprocess.Process) -> None:
    assert process.stdout is not None
    while await process.stdout.readline():
        pass
