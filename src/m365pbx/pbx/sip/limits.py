"""Who may talk to our SIP sockets, and how many TCP connections others may keep open.

Only the server sends us requests (its NOTIFYs), so anything from another address is
refused: a datagram is dropped, a TCP connection closed as it is accepted. Connections
the server (or anyone allowed) opens to our listener are capped per peer and in all, so
a flood cannot use up the file descriptors the server's own NOTIFY connections need,
and each must finish its messages in time (`TcpLimits`).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TcpLimits:
    """Bounds on the connections others open to our TCP listener (times in seconds)."""

    # A connection that has not completed a message this long after it opened is closed.
    idle_timeout: float = 30.0
    # A message must arrive whole this long after its first byte (against slowloris).
    message_timeout: float = 10.0
    max_per_peer: int = 32
    # Well below the usual limit of 1,024 open files.
    max_total: int = 128


DEFAULT_TCP_LIMITS = TcpLimits()


def host_key(host: str) -> str:
    """`host` as one canonical text: IPv4-mapped IPv6 as IPv4, no zone, compressed IPv6."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class PeerFilter:
    """The addresses allowed to send us anything (None: everyone, until the server resolves)."""

    def __init__(self) -> None:
        self.allowed: frozenset[str] | None = None

    def allow(self, hosts: set[str] | frozenset[str]) -> None:
        """Allow exactly these hosts (the server's resolved addresses)."""
        self.allowed = frozenset(host_key(host) for host in hosts)

    def permits(self, host: str) -> bool:
        """Whether `host` may send to us."""
        allowed = self.allowed
        return allowed is None or host in allowed or host_key(host) in allowed

    def describe(self) -> str:
        """The allowed addresses in words, for log lines."""
        return "anyone" if self.allowed is None else ", ".join(sorted(self.allowed))


class Admission:
    """Counts the accepted connections by peer and says whether one more may stay."""

    def __init__(self, limits: TcpLimits, peers: PeerFilter) -> None:
        self.limits = limits
        self.peers = peers
        self._open: Counter[str] = Counter()

    @property
    def total(self) -> int:
        """How many accepted connections are open."""
        return sum(self._open.values())

    def admit(self, host: str) -> tuple[str, str] | None:
        """Register a new connection from `host`, or say why not: (reason, detail)."""
        if not self.peers.permits(host):
            return "foreign-address", (
                f"TCP connection from {host} (only {self.peers.describe()} may connect)"
            )
        key = host_key(host)
        if self._open[key] >= self.limits.max_per_peer:
            return "too-many-from-peer", (
                f"TCP connection from {host}: it has {self._open[key]} open already "
                f"(at most {self.limits.max_per_peer})"
            )
        if self.total >= self.limits.max_total:
            return "too-many-connections", (
                f"TCP connection from {host}: {self.total} open already "
                f"(at most {self.limits.max_total})"
            )
        self._open[key] += 1
        return None

    def release(self, host: str) -> None:
        """An admitted connection from `host` closed."""
        key = host_key(host)
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]
