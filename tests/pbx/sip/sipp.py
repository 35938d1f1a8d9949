"""Drive SIPp as an independent presence watcher (not our code) and read what it received."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

from tests.pbx.sip.kamailio import free_port

SCENARIO = Path(__file__).parent / "sipp" / "watcher.xml"


@dataclass
class WatcherRun:
    """What one SIPp watcher run saw: its exit status and the NOTIFY bodies received."""

    returncode: int
    notify_bodies: list[str]
    output: str


def scenario(folder: Path, domain: str, first: str, second: str | None) -> Path:
    """Write the watcher scenario with the patterns and the domain filled in."""
    text = SCENARIO.read_text()
    if second is None:
        start = text.index("<!--second:")
        end = text.index("<!--/second-->") + len("<!--/second-->")
        text = text[:start] + text[end:]
        text = text.replace('<nop next="second" test="hit1"/>', '<nop next="done" test="hit1"/>')
    else:
        text = text.replace("@SECOND@", second)
    path = folder / f"watcher-{abs(hash((first, second)))}.xml"
    path.write_text(text.replace("@FIRST@", first).replace("@DOMAIN@", domain))
    return path


def notify_bodies(log: str) -> list[str]:
    """The bodies of the NOTIFY requests in a SIPp -trace_msg message log."""
    bodies = []
    for block in re.split(r"\n-{20,}[^\n]*\n", log):
        head, _, rest = block.partition("\n\n")
        if "message received" not in head:
            continue
        message = rest.lstrip("\n")
        if not message.startswith("NOTIFY "):
            continue
        _, _, body = message.replace("\r\n", "\n").partition("\n\n")
        bodies.append(body.strip())
    return bodies


class Watcher:
    """One SIPp process subscribed to a person's presence."""

    def __init__(
        self,
        folder: Path,
        port: int,
        user: str,
        first: str,
        second: str | None = None,
        *,
        domain: str = "127.0.0.1",
        timeout: float = 60.0,
    ) -> None:
        self.folder = folder
        self.port = port
        self.user = user
        self.file = scenario(folder, domain, first, second)
        self.timeout = timeout
        self.log = folder / f"sipp-{user}-{id(self)}.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start SIPp; it subscribes at once."""
        self.process = await asyncio.create_subprocess_exec(
            "sipp",
            "-sf",
            str(self.file),
            "-s",
            self.user,
            "-m",
            "1",
            "-aa",
            "-recv_timeout",
            str(int(self.timeout * 1000)),
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port()),
            "-nostdin",
            "-trace_msg",
            "-message_file",
            str(self.log),
            f"127.0.0.1:{self.port}",
            cwd=self.folder,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )

    async def received(self, pattern: str) -> None:
        """Wait until a NOTIFY whose body holds `pattern` reached SIPp (its message log says)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            text = self.log.read_text(errors="replace") if self.log.exists() else ""
            if any(pattern in body for body in notify_bodies(text)):
                return
            if loop.time() > deadline:
                raise TimeoutError(f"SIPp received no NOTIFY with {pattern!r}")
            await asyncio.sleep(0.02)

    async def result(self) -> WatcherRun:
        """Wait for SIPp to end (a match or its receive timeout) and collect what it saw."""
        assert self.process is not None
        try:
            output, _ = await asyncio.wait_for(self.process.communicate(), self.timeout + 20)
        except TimeoutError:
            self.process.kill()
            output, _ = await self.process.communicate()
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        code = self.process.returncode if self.process.returncode is not None else -1
        return WatcherRun(code, notify_bodies(text), output.decode(errors="replace")[-2000:])
