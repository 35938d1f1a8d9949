"""Pending device-code sign-ins (v2-oauth2-device-code.md), found by device or user code."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

# Letters and digits a person can read off a screen without confusing 0/O or 1/I.
_USER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class FlowState(Enum):
    """Where a device-code sign-in stands."""

    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"


@dataclass
class DeviceFlow:
    """One device-code sign-in, from /devicecode until the token is redeemed."""

    device_code: str
    user_code: str
    # The tenant segment of the /devicecode URL (id, domain, common or organizations).
    tenant_segment: str
    app_id: str
    scope: str
    created_at: datetime
    expires_at: datetime
    interval_s: int
    state: FlowState = FlowState.PENDING
    last_poll: datetime | None = None
    tenant_id: str | None = None
    user_id: str | None = None

    def expired(self, now: datetime) -> bool:
        """Whether `expires_in` has passed."""
        return now >= self.expires_at


@dataclass
class DeviceCodeStore:
    """The device flows of one simulator."""

    _by_device: dict[str, DeviceFlow] = field(default_factory=dict)
    _by_user: dict[str, DeviceFlow] = field(default_factory=dict)

    def start(self, *, tenant_segment: str, app_id: str, scope: str, now: datetime,
              lifetime_s: int, interval_s: int, user_code_length: int) -> DeviceFlow:
        """Begin a flow with a fresh device code and a short user code."""
        self._forget_expired(now)
        user_code = _new_user_code(user_code_length)
        while user_code in self._by_user:
            user_code = _new_user_code(user_code_length)
        flow = DeviceFlow(
            device_code="DAQABIQEAAA" + secrets.token_urlsafe(96),
            user_code=user_code,
            tenant_segment=tenant_segment,
            app_id=app_id,
            scope=scope,
            created_at=now,
            expires_at=now + timedelta(seconds=lifetime_s),
            interval_s=interval_s,
        )
        self._by_device[flow.device_code] = flow
        self._by_user[flow.user_code] = flow
        return flow

    def by_device_code(self, device_code: str) -> DeviceFlow | None:
        """The flow a client polls for."""
        return self._by_device.get(device_code)

    def by_user_code(self, user_code: str) -> DeviceFlow | None:
        """The flow a person typed the code of (case and dashes ignored)."""
        return self._by_user.get(user_code.replace("-", "").strip().upper())

    def finish(self, flow: DeviceFlow) -> None:
        """Forget a flow whose token was redeemed: a device code works once."""
        self._by_device.pop(flow.device_code, None)
        self._by_user.pop(flow.user_code, None)

    def _forget_expired(self, now: datetime) -> None:
        # Keep expired flows for a while so polls get expired_token, not bad_verification_code.
        stale = [f for f in self._by_device.values()
                 if now - f.expires_at > timedelta(hours=1)]
        for flow in stale:
            self.finish(flow)


def _new_user_code(length: int) -> str:
    return "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(length))
