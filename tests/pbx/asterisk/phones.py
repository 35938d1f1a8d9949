"""SIPp as real phones on the test Asterisk: one that answers, one that calls until hung up."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

CALLER = Path(__file__).parent / "sipp" / "caller.xml"
ANSWERER = Path(__file__).parent / "sipp" / "answerer.xml"


class SippPhone:
    """One SIPp process (UDP on 127.0.0.1) with its output kept for failures."""

    def __init__(self, folder: Path, args: list[str], name: str) -> None:
        self.folder = folder
        self.args = args
        self.name = name
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start SIPp in the background."""
        self.process = await asyncio.create_subprocess_exec(
            "sipp", *self.args, "-nostdin", "-trace_err",
            cwd=self.folder, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.STDOUT)

    async def finished(self, within: float = 60.0) -> int:
        """Wait for SIPp to end; its exit status (0: the scenario ran through)."""
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), within)

    async def stop(self) -> None:
        """Kill SIPp if it still runs."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


def answering_phone(folder: Path, port: int) -> SippPhone:
    """A phone listening on `port` that rings for half a second, answers one call and
    hangs up when told (BYE)."""
    return SippPhone(folder, ["-sf", str(ANSWERER), "-i", "127.0.0.1", "-p", str(port),
                              "-m", "1"], f"uas-{port}")


def calling_phone(folder: Path, asterisk_sip_port: int, port: int, caller: str,
                  callee: str) -> SippPhone:
    """A phone (endpoint `caller`) that calls `callee` and stays until Asterisk hangs up."""
    values = folder / f"caller-{caller}.csv"
    values.write_text(f"SEQUENTIAL\n{caller};\n")
    return SippPhone(folder, ["-sf", str(CALLER), "-inf", str(values), "-s", callee,
                              "-i", "127.0.0.1", "-p", str(port), "-m", "1",
                              f"127.0.0.1:{asterisk_sip_port}"], f"uac-{caller}")
