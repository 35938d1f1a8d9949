"""A real Kamailio presence server for tests and benchmarks, on a free loopback port.

Kamailio's presence module with db_text tables copied into a temp folder
(with the `presentity.sender` nullable fix, without which Kamailio refuses its own saved
file after a clean restart), started with setsid so a crash can kill the whole process
group, ready once it answers OPTIONS.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

CONFIG = Path(__file__).parent / "kamailio" / "presence.cfg"
DBTEXT = Path("/usr/share/kamailio/dbtext/kamailio")
TABLES = ("version", "presentity", "active_watchers", "watchers", "xcap", "subscriber")


def missing_tools() -> list[str]:
    """Names of the programs the SIP integration tests need but cannot find."""
    missing = [name for name in ("kamailio", "sipp") if shutil.which(name) is None]
    modules = [*Path("/usr/lib").glob("*/kamailio/modules"), Path("/usr/lib/kamailio/modules")]
    if shutil.which("kamailio"):
        if not (DBTEXT / "presentity").exists():
            missing.append("kamailio's db_text tables")
        if not any((folder / "presence_dialoginfo.so").exists() for folder in modules):
            missing.append("kamailio-presence-modules")
    return missing


def free_port() -> int:
    """A port that is free for both UDP and TCP on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port on 127.0.0.1")


def _options_ping(port: int, timeout: float) -> bool:
    call_id = uuid.uuid4().hex
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        local = sock.getsockname()[1]
        message = (
            f"OPTIONS sip:ping@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{call_id[:16]}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@127.0.0.1>;tag={call_id[:8]}\r\n"
            f"To: <sip:ping@127.0.0.1:{port}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        sock.settimeout(timeout)
        try:
            sock.sendto(message, ("127.0.0.1", port))
            data, _ = sock.recvfrom(65535)
        except OSError:
            return False
    return data.startswith(b"SIP/2.0 200")


def _live_members(group: int) -> list[int]:
    """Processes of a process group that are not zombies (a zombie holds no port)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()  # state, ppid, pgrp, ...
        if len(fields) > 2 and fields[2] == str(group) and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _dbtext_escape(value: str) -> str:
    # db_text separates columns with ':' and escapes with '\\' (kamailio db_text docs).
    return value.replace("\\", "\\\\").replace(":", "\\:")


class KamailioServer:
    """One Kamailio process tree with its own db_text folder; restartable on the same port."""

    def __init__(
        self,
        root: Path,
        *,
        accounts: dict[str, str] | None = None,
        domain: str = "127.0.0.1",
        defines: tuple[str, ...] = (),
        port: int = 0,
        memory_mb: int = 64,
    ) -> None:
        self.root = root
        self.accounts = accounts
        self.defines = defines
        self.memory_mb = memory_mb
        self.domain = domain
        self.db = root / "db"
        self.run = root / "run"
        self.log = root / "kamailio.log"
        self.port = port
        self._fixed_port = bool(port)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.failed_starts: list[str] = []

    def _prepare(self) -> None:
        self.db.mkdir(parents=True, exist_ok=True)
        self.run.mkdir(parents=True, exist_ok=True)
        for table in TABLES:
            shutil.copy(DBTEXT / table, self.db / table)
        presentity = self.db / "presentity"
        # README: db_text must accept an empty presentity.sender at the next start.
        text = presentity.read_text().replace("sender(string)", "sender(string,null)", 1)
        presentity.write_text(text)
        rows = []
        for number, (user, password) in enumerate((self.accounts or {}).items(), start=1):
            ha1 = hashlib.md5(f"{user}:{self.domain}:{password}".encode()).hexdigest()
            ha1b = hashlib.md5(
                f"{user}@{self.domain}:{self.domain}:{password}".encode()
            ).hexdigest()
            fields = [str(number), user, self.domain, password, ha1, ha1b]
            rows.append(":".join(_dbtext_escape(field) for field in fields) + "\n")
        with (self.db / "subscriber").open("a") as subscribers:
            subscribers.writelines(rows)

    def start(self, timeout: float = 15.0) -> None:
        """Start (first time: on a fresh port and database) and wait until it answers."""
        if self.starts == 0:
            self._prepare()
        for attempt in range(5):
            if not self.port or (self.starts == 0 and attempt > 0 and not self._fixed_port):
                self.port = free_port()
            self._spawn()
            if self._wait_ready(timeout):
                self.starts += 1
                return
            self.failed_starts.append(self.log_tail(10))
            self.kill()
            if self.starts > 0 and attempt >= 2:
                break
            if self.starts > 0:
                time.sleep(0.5)  # the old sockets may linger a moment after a crash
        raise RuntimeError(f"Kamailio did not start; see {self.log}:\n{self.log_tail()}")

    def _spawn(self) -> None:
        command = [
            "kamailio",
            "-f",
            str(CONFIG),
            "-DD",
            "-E",
            "-m",
            str(self.memory_mb),
            "-M",
            "8",
            "-l",
            f"udp:127.0.0.1:{self.port}",
            "-l",
            f"tcp:127.0.0.1:{self.port}",
            "-Y",
            str(self.run),
            "-P",
            str(self.run / "kamailio.pid"),
            "-A",
            f'DBURL="text://{self.db}"',
        ]
        if self.accounts is not None:
            command += ["-A", "WITH_AUTH"]
        for define in self.defines:
            command += ["-A", define]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            if _options_ping(self.port, 0.2):
                return True
        return False

    def stop(self, timeout: float = 3.0) -> None:
        """Clean stop (SIGTERM to the main process: db_text writes its tables back).

        Kamailio 5.6 sometimes hangs on a futex after "Thank you for flying kamailio"
        when a child was sending a NOTIFY as the signal came (seen here, about one stop
        in ten); after `timeout` the group is killed, which loses what db_text held.
        """
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        if not self._group_gone(timeout):
            self.kill()
        self.process = None

    def kill(self) -> None:
        """Crash: SIGKILL to the whole process group; db_text loses everything in memory."""
        if self.process is None:
            return
        # Killing only the main PID leaves the children serving the port (README).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self._group_gone(10)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP the whole process group: the server is there but answers nothing."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT the process group after pause()."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    def _group_gone(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _live_members(self.process.pid):
                return True
            time.sleep(0.02)
        return False

    def restart(self, *, clean: bool = True) -> None:
        """Stop (cleanly, or crash) and start again on the same port and database."""
        if clean:
            self.stop()
        else:
            self.kill()
        self.start()

    def log_tail(self, lines: int = 30) -> str:
        """The end of Kamailio's log, for failure messages."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
