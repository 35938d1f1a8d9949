"""A real Asterisk 22 in the cached sid chroot, on free loopback ports, with generated config.

Each server gets its own folder inside the chroot (config, AstDB, run, spool, log) and its own
asterisk.conf pointing there, so several can share one chroot. Asterisk runs as the chroot's
`asterisk` user (as root it cannot open its database). Ready once the AMI logs in and
reports FullyBooted. `ami()` is a plain blocking AMI client of the tests' own, independent of
m365pbx's, for arranging and checking state.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tests.pbx.sip.kamailio import free_port

AMI_USER = "m365pbx"
AMI_SECRET = "s3cr3t-ami:pw"
# The modules the tests need, so Asterisk starts in about a second instead of loading 350.
MODULES = (
    "res_sorcery_config", "res_sorcery_memory", "res_sorcery_astdb", "res_pjproject",
    "res_timing_timerfd", "res_rtp_asterisk", "res_pjsip", "res_pjsip_session",
    "res_pjsip_sdp_rtp", "res_pjsip_authenticator_digest",
    "res_pjsip_outbound_authenticator_digest", "res_pjsip_endpoint_identifier_user",
    "res_pjsip_registrar", "res_pjsip_pubsub", "res_pjsip_outbound_publish",
    "res_pjsip_exten_state", "res_pjsip_pidf_body_generator",
    "res_pjsip_dialog_info_body_generator", "res_pjsip_xpidf_body_generator",
    "res_pjsip_pidf_digium_body_supplement", "res_pjsip_caller_id", "chan_pjsip",
    "bridge_simple", "bridge_native_rtp", "codec_ulaw", "format_pcm", "pbx_config",
    "app_dial", "app_db", "app_echo", "app_playback", "app_stack", "func_db",
    "func_devstate", "func_presencestate", "func_callerid", "func_strings", "func_logic",
    "res_manager_devicestate", "res_manager_presencestate",
)


@dataclass(frozen=True)
class Phone:
    """A PJSIP endpoint: extension, caller-id name, and where its phone listens (0: none)."""

    extension: str
    name: str
    port: int = 0


@dataclass
class AmiUser:
    """A manager.conf user."""

    name: str
    secret: str
    read: str = "call,reporting,system"
    write: str = "call,reporting,system"


@dataclass
class AsteriskConfig:
    """What the generated configuration holds."""

    phones: list[Phone]
    ami_users: list[AmiUser] = field(
        default_factory=lambda: [AmiUser(AMI_USER, AMI_SECRET)])
    hints: bool = True
    # PEM server certificate and key for the AMI over TLS (on `ami_tls_port`); None: no TLS.
    tls: tuple[Path, Path] | None = None


def _ids(root: Path, name: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == name:
            return int(parts[2]), int(parts[3])
    raise RuntimeError(f"no user {name} in the chroot")


class AmiError(Exception):
    """The test AMI client got an error response."""


class AsteriskServer:
    """One Asterisk process in the chroot; restartable on the same ports."""

    def __init__(self, root: Path, config: AsteriskConfig) -> None:
        self.root = root
        self.config = config
        self.inside = Path("/var/tmp/m365pbx") / uuid.uuid4().hex[:12]
        self.folder = root / self.inside.relative_to("/")
        self.ami_port = free_port()
        self.sip_port = free_port()
        self.ami_tls_port = free_port()
        self.log = self.folder / "asterisk.out"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    # configuration ----------------------------------------------------------------------

    def _write(self, name: str, text: str) -> None:
        (self.folder / "etc" / name).write_text(text)

    def write_config(self) -> None:
        """Write every configuration file (again: a restart reads the changes)."""
        inside = self.inside
        dirs = {
            "astetcdir": inside / "etc", "astmoddir": "/usr/lib/x86_64-linux-gnu/asterisk/modules",
            "astvarlibdir": "/var/lib/asterisk", "astdbdir": inside / "lib",
            "astkeydir": inside / "lib", "astdatadir": "/usr/share/asterisk",
            "astagidir": "/usr/share/asterisk/agi-bin", "astspooldir": inside / "spool",
            "astrundir": inside / "run", "astlogdir": inside / "log",
            "astcachedir": inside / "cache", "astsbindir": "/usr/sbin",
        }
        modules = "".join(f"load => {m}.so\n" for m in MODULES)
        self._write("asterisk.conf", "[directories]\n" + "".join(
            f"{k} => {v}\n" for k, v in dirs.items()) + "[options]\nhideconnect = yes\n")
        self._write("modules.conf", f"[modules]\nautoload = no\n{modules}")
        self._write("logger.conf", "[general]\n[logfiles]\nconsole => error,warning,notice\n")
        self._write("manager.conf", self._manager())
        self._write("pjsip.conf", self._pjsip())
        self._write("extensions.conf", self._extensions())
        self._write("rtp.conf", "[general]\nrtpstart = 30000\nrtpend = 40000\n")
        for name in ("cdr.conf", "cel.conf", "features.conf", "indications.conf", "acl.conf",
                     "pjproject.conf", "ccss.conf", "stasis.conf", "udptl.conf"):
            self._write(name, "")  # present, so Asterisk does not log that it misses them

    def _manager(self) -> str:
        text = (f"[general]\nenabled = yes\nport = {self.ami_port}\n"
                "bindaddr = 127.0.0.1\n")
        if self.config.tls is not None:
            etc = self.inside / "etc"
            text += (f"tlsenable = yes\ntlsbindaddr = 127.0.0.1:{self.ami_tls_port}\n"
                     f"tlscertfile = {etc / 'ami-cert.pem'}\n"
                     f"tlsprivatekey = {etc / 'ami-key.pem'}\n")
        for user in self.config.ami_users:
            text += (f"\n[{user.name}]\nsecret = {user.secret}\n"
                     "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n"
                     f"read = {user.read}\nwrite = {user.write}\n")
        return text

    def _pjsip(self) -> str:
        text = (f"[udp]\ntype = transport\nprotocol = udp\nbind = 127.0.0.1:{self.sip_port}\n")
        for phone in self.config.phones:
            ext = phone.extension
            text += (f"\n[{ext}]\ntype = endpoint\ncontext = internal\n"
                     "subscribe_context = internal\ndisallow = all\nallow = ulaw\n"
                     f"direct_media = no\naors = {ext}\ncallerid = \"{phone.name}\" <{ext}>\n"
                     f"\n[{ext}]\ntype = aor\nmax_contacts = 1\n")
            if phone.port:
                text += f"contact = sip:{ext}@127.0.0.1:{phone.port}\n"
        return text

    def _extensions(self) -> str:
        text = "[general]\nstatic = yes\n\n[internal]\n"
        for phone in self.config.phones:
            ext = phone.extension
            if self.config.hints:
                text += (f"exten => {ext},hint,PJSIP/{ext}&Custom:{ext}-teams,"
                         f"CustomPresence:{ext}\n")
            text += f"exten => {ext},1,Dial(PJSIP/{ext},60)\n same => n,Hangup()\n"
        return text

    # lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Start Asterisk (first time: write the configuration) and wait until it is ready."""
        if self.starts == 0:
            for sub in ("etc", "lib", "spool", "run", "log", "cache"):
                (self.folder / sub).mkdir(parents=True, exist_ok=True)
            self.write_config()
            if self.config.tls is not None:
                shutil.copy(self.config.tls[0], self.folder / "etc" / "ami-cert.pem")
                shutil.copy(self.config.tls[1], self.folder / "etc" / "ami-key.pem")
            uid, gid = _ids(self.root, "asterisk")
            for path in [self.folder, *self.folder.rglob("*")]:
                os.chown(path, uid, gid)
        command = ["chroot", str(self.root), "/usr/sbin/asterisk", "-f", "-C",
                   str(self.inside / "etc/asterisk.conf"), "-U", "asterisk", "-G", "asterisk"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(OSError, AmiError):
                if self._booted():
                    self.starts += 1
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Asterisk did not start; {self.log}:\n{self.log_tail()}")

    def _booted(self) -> bool:
        with self.session() as ami:
            return ami.booted

    def stop(self) -> None:
        """Stop Asterisk (SIGTERM, then SIGKILL after 10 s) and wait for its processes."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def restart(self) -> None:
        """Stop and start again on the same ports (Custom: states are forgotten, AstDB kept)."""
        self.stop()
        self.start()

    def remove(self) -> None:
        """Stop and delete this server's folder in the chroot."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        """The end of Asterisk's console output."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    # the tests' own AMI client ------------------------------------------------------------

    def session(self, user: str = AMI_USER, secret: str = AMI_SECRET) -> AmiSession:
        """A logged-in blocking AMI session (use with `with`)."""
        return AmiSession(self.ami_port, user, secret)

    def ami(self, action: str, **fields: str) -> list[dict[str, str]]:
        """Run one action in a fresh session: its response and any list events."""
        with self.session() as ami:
            return ami.action(action, **fields)

    def getvar(self, variable: str) -> str:
        """A global variable or function value, e.g. DEVICE_STATE(Custom:2001-teams)."""
        return self.ami("Getvar", Variable=variable)[0].get("Value", "")


class AmiSession:
    """A tiny synchronous AMI client for the tests (not m365pbx's client)."""

    def __init__(self, port: int, user: str, secret: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""
        self.events: list[dict[str, str]] = []
        self.banner = self._line()
        self.booted = False
        answer = self.action("Login", Username=user, Secret=secret)[0]
        if answer.get("Response") != "Success":
            self.sock.close()
            raise AmiError(answer.get("Message", "login failed"))
        self.booted = any(e.get("Event") == "FullyBooted" for e in self.events) or \
            self._wait_event("FullyBooted", 2.0)

    def __enter__(self) -> AmiSession:
        return self

    def __exit__(self, *_: object) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"Action: Logoff\r\n\r\n")
        self.sock.close()

    def _line(self) -> str:
        while b"\r\n" not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise OSError("AMI closed the connection")
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line.decode()

    def message(self) -> dict[str, str]:
        """The next message (response or event)."""
        found: dict[str, str] = {}
        while True:
            line = self._line()
            if not line:
                if found:
                    return found
                continue
            key, _, value = line.partition(":")
            found.setdefault(key.strip(), value.strip())

    def _wait_event(self, name: str, timeout: float) -> bool:
        self.sock.settimeout(timeout)
        try:
            while True:
                message = self.message()
                self.events.append(message)
                if message.get("Event") == name:
                    return True
        except OSError:
            return False
        finally:
            self.sock.settimeout(10)

    def action(self, action: str, **fields: str) -> list[dict[str, str]]:
        """Send an action; its response, then its list events up to the Complete one."""
        action_id = uuid.uuid4().hex
        lines = [f"Action: {action}", f"ActionID: {action_id}",
                 *(f"{k}: {v}" for k, v in fields.items())]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        found: list[dict[str, str]] = []
        listing = False
        while True:
            message = self.message()
            if message.get("ActionID") != action_id:
                self.events.append(message)
                continue
            found.append(message)
            if "Response" in message:
                listing = message.get("EventList") == "start" or "will follow" in \
                    message.get("Message", "")
                if message["Response"] == "Error" and action != "Login":
                    raise AmiError(message.get("Message", ""))
            if not listing or message.get("EventList") == "Complete":
                return found

    def wait_for(self, match: dict[str, str], timeout: float = 30.0) -> dict[str, str]:
        """The first event (seen already or arriving within `timeout`) with these fields."""
        def fits(event: dict[str, str]) -> bool:
            return all(event.get(k) == v for k, v in match.items())
        for event in self.events:
            if fits(event):
                return event
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                event = self.message()
            except TimeoutError:
                break
            self.events.append(event)
            if fits(event):
                return event
        raise TimeoutError(f"no AMI event {match} within {timeout} s")


def phones(*people: tuple[str, str], ports: Iterable[int] = ()) -> list[Phone]:
    """Phones from (extension, name) pairs, with phone ports where given."""
    listed = list(ports)
    return [Phone(ext, name, listed[i] if i < len(listed) else 0)
            for i, (ext, name) in enumerate(people)]
