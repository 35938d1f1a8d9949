"""A Debian sid chroot with Asterisk 22, built once with mmdebstrap and cached for every run.

Debian 12 has no Asterisk package; sid has Asterisk 22 but needs a newer libc, so the tests
run it in a sid chroot built from the same Debian mirror (about 280 MB, 45-160 s). The
chroot lives under /var/cache/m365pbx-tests/ keyed by CHROOT_VERSION (change the key to
rebuild); a file lock makes concurrent test sessions build it once, and a marker written
last means a half-built tree from an interrupted build is never used.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

CHROOT_VERSION = "asterisk-sid-2"
CACHE = Path(os.environ.get("M365PBX_TEST_CACHE", "/var/cache/m365pbx-tests"))
PACKAGES = ("asterisk", "asterisk-modules", "asterisk-config")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
_DONE = ".m365pbx-complete"
ASTERISK_ID = 917  # the chroot's asterisk user: a system uid (as adduser wants) unused here


class ChrootUnavailable(Exception):
    """The Asterisk chroot cannot be built here (the message says why and how to fix it)."""


def debian_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian mirror the host's apt uses (sid is taken from the same one)."""
    texts = [p.read_text(errors="replace") for p in
             [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*"))]
             if p.is_file()]
    for text in texts:
        for url in re.findall(r"(?:URIs:|deb)\s+(https?://\S+)", text):
            if "security" not in url and url.rstrip("/").endswith("/debian"):
                return str(url).rstrip("/")
    return DEFAULT_MIRROR


def chroot_root(version: str = CHROOT_VERSION) -> Path:
    """Where the chroot of this version lives (built or not)."""
    return CACHE / version / "root"


def ensure_chroot(version: str = CHROOT_VERSION) -> tuple[Path, float]:
    """The chroot's root, built first if needed, and the seconds the build took (0: cached)."""
    root = chroot_root(version)
    if (root / _DONE).exists():
        return root, 0.0
    if os.geteuid() != 0:
        raise ChrootUnavailable("building and running the Asterisk chroot needs root")
    if shutil.which("mmdebstrap") is None:
        raise ChrootUnavailable("mmdebstrap is not installed: apt-get install -y mmdebstrap")
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be building it right now
        if (root / _DONE).exists():
            return root, 0.0
        started = time.monotonic()
        building = root.parent / "building"
        shutil.rmtree(building, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        log = root.parent / "build.log"
        command = [
            "mmdebstrap", "--variant=apt", "--quiet",
            # sid's Release file on some mirrors carries a Valid-Until in the past.
            "--aptopt=Acquire::Check-Valid-Until \"false\"",
            # Documentation and translations are never read: less to unpack.
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            # The package would take the first free system uid, which on the host is often
            # another service's (postgres): Asterisk would run as that user there. The
            # essential set has no useradd, so the user is written into the files.
            f"--essential-hook=echo 'asterisk:x:{ASTERISK_ID}:{ASTERISK_ID}:Asterisk PBX "
            f"daemon:/var/lib/asterisk:/usr/sbin/nologin' >> \"$1/etc/passwd\" && "
            f"echo 'asterisk:x:{ASTERISK_ID}:' >> \"$1/etc/group\"",
            f"--include={','.join(PACKAGES)}",
            "sid", str(building), f"deb {debian_mirror()} sid main",
        ]
        with log.open("wb") as out:
            result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
        if result.returncode != 0 or not (building / "usr/sbin/asterisk").exists():
            tail = log.read_text(errors="replace")[-1500:]
            raise ChrootUnavailable(f"mmdebstrap could not build the Asterisk chroot "
                                    f"(exit {result.returncode}; {log}):\n{tail}")
        (building / _DONE).write_text(version)
        building.rename(root)
        return root, time.monotonic() - started
