"""Checking an admin's password against the store: lockout after failures, all audited."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from m365pbx.service.admin_passwords import hash_password, verify_password
from m365pbx.store import Repositories, Store

log = logging.getLogger(__name__)

MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)


@dataclass(frozen=True)
class SignInResult:
    """Whether the sign-in worked, and if not why, in words the sign-in page may show."""

    ok: bool
    reason: str = ""
    locked: bool = False

    @property
    def shown(self) -> str:
        """What the sign-in page says: the same for a wrong name or password; a lock is said."""
        if self.locked:
            return ("too many failed sign-ins: this admin is locked for "
                    f"{LOCK_FOR.seconds // 60} minutes")
        return "" if self.ok else "wrong name or password"


class UnknownNames:
    """Failed sign-ins under names that are no admin, counted like an admin's (in memory,
    at most `keep` names): the page then says "locked" after the same number of tries
    whether the name exists or not, so the lock does not tell which names do."""

    def __init__(self, keep: int = 10_000) -> None:
        self.keep = keep
        self._failures: dict[str, tuple[int, datetime | None]] = {}

    def failed(self, name: str, now: datetime) -> bool:
        """Count one failure; whether the name is (now) locked."""
        count, until = self._failures.pop(name, (0, None))
        if until is not None and until > now:
            self._failures[name] = (count, until)
            return True
        count = 1 if until is not None else count + 1  # an ended lock starts again
        locked = count >= MAX_FAILURES
        self._failures[name] = (0, now + LOCK_FOR) if locked else (count, None)
        while len(self._failures) > self.keep:  # the oldest entry goes first
            del self._failures[next(iter(self._failures))]
        return locked


async def audit_sign_in(tx: Repositories, name: str, *, now: datetime, ok: bool,
                        reason: str = "", how: str = "password") -> None:
    """Record a sign-in attempt in the audit trail (never the password)."""
    await tx.audit.append(at=now, actor=name, action="admin.sign_in" if ok else
                          "admin.sign_in_failed", object_type="admin", object_id=name,
                          details={"how": how, **({"reason": reason} if reason else {})})


async def check_sign_in(store: Store, name: str, password: str, now: datetime,
                        unknown: UnknownNames | None = None) -> SignInResult:
    """Check `name`'s password; count a failure (locking at MAX_FAILURES); audit either way.

    `unknown` counts the failures of names that are no admin (see UnknownNames)."""

    async def work(tx: Repositories) -> SignInResult:
        row = await tx.admin_users.find(name)
        if row is not None and row.locked_until is not None and row.locked_until > now:
            # Not even checked: guessing on while locked must not tell a right guess.
            result = SignInResult(False, "locked after too many failed sign-ins, until "
                                         f"{row.locked_until:%H:%M} UTC", locked=True)
        elif verify_password(None if row is None else row.password_hash, password):
            assert row is not None
            await tx.admin_users.signed_in(row, now=now)
            result = SignInResult(True)
        elif row is None:
            locked = unknown is not None and unknown.failed(name, now)
            result = SignInResult(False, "unknown admin", locked=locked)
        else:
            locked = await tx.admin_users.failed(row, now=now, limit=MAX_FAILURES,
                                                 lock_for=LOCK_FOR)
            result = SignInResult(False, "wrong password" + (
                f"; locked for {LOCK_FOR.seconds // 60} minutes after {MAX_FAILURES} "
                "failures in a row" if locked else ""), locked=locked)
        await audit_sign_in(tx, name, now=now, ok=result.ok, reason=result.reason)
        return result

    result = await store.write(work, what=f"the sign-in of admin {name!r}")
    if not result.ok:
        log.warning("admin sign-in refused for %r: %s", name, result.reason)
    return result


async def create_admin(tx: Repositories, name: str, password: str, *, now: datetime,
                       actor: str) -> None:
    """Add an admin with `password` hashed (ValueError: too short; ConflictError: taken)."""
    row = await tx.admin_users.create(name, hash_password(password), now=now)
    await tx.audit.append(at=now, actor=actor, action="admin.create", object_type="admin",
                          object_id=row.name, details={"name": row.name})


async def set_admin_password(tx: Repositories, name: str, password: str, *, now: datetime,
                             actor: str) -> bool:
    """Replace an admin's password (and unlock them, and end their sessions); False if
    there is no such admin."""
    row = await tx.admin_users.set_password(name, hash_password(password))
    if row is None:
        return False
    # A new password is often the answer to a stolen one: its sessions end with it.
    ended = await tx.admin_sessions.remove_admin(name)
    await tx.audit.append(at=now, actor=actor, action="admin.password", object_type="admin",
                          object_id=name, details={"name": name, "sessions_ended": ended})
    return True
