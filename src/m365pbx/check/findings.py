"""What `check` reports: findings (ok / warn / fail, in words, with the fix) and the exit status."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """How one finding came out."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


# Exit status for scripts: 0 all ok, 1 at least one warning, 2 at least one failure.
EXIT_STATUS = {Status.OK: 0, Status.WARN: 1, Status.FAIL: 2}


@dataclass(frozen=True)
class Finding:
    """One thing checked: what, about whom, how it came out, why in words, and the fix."""

    # What was checked, e.g. "hosts", "permissions", "service account", "public url", "pbx".
    area: str
    # Whose: "tenant contoso", "service account svc@contoso.com", "connection office-sip".
    subject: str
    status: Status
    message: str
    fix: str = ""
    # The AADSTS number or Graph error code behind a failure, when there is one.
    code: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The finding as plain JSON-ready data."""
        data = asdict(self)
        data["status"] = self.status.value
        return data


def ok(area: str, subject: str, message: str) -> Finding:
    """A finding that is fine."""
    return Finding(area, subject, Status.OK, message)


def warn(area: str, subject: str, message: str, fix: str, code: str = "") -> Finding:
    """A finding that works but should be looked at."""
    return Finding(area, subject, Status.WARN, message, fix, code)


def fail(area: str, subject: str, message: str, fix: str, code: str = "") -> Finding:
    """A finding that stops something from working."""
    return Finding(area, subject, Status.FAIL, message, fix, code)


def worst(findings: Iterable[Finding]) -> Status:
    """The worst status among the findings (ok when there are none)."""
    order = (Status.OK, Status.WARN, Status.FAIL)
    return max((f.status for f in findings), key=order.index, default=Status.OK)


def exit_status(findings: Iterable[Finding]) -> int:
    """0 when every finding is ok, 1 with a warning, 2 with a failure."""
    return EXIT_STATUS[worst(findings)]


def as_json(findings: Iterable[Finding]) -> dict[str, Any]:
    """The report as one JSON-ready object: the worst status, counts and every finding."""
    items = list(findings)
    counts = {status.value: sum(1 for f in items if f.status is status) for status in Status}
    return {"status": worst(items).value, "exit_status": exit_status(items), "counts": counts,
            "findings": [f.as_dict() for f in items]}
