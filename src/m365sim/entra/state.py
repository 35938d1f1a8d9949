"""What the Entra part keeps between requests: its settings, refresh tokens, device codes
and the client-assertion ids it has seen, one set per Simulator."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from m365sim.entra.assertion_ledger import AssertionLedger
from m365sim.entra.devicecode_store import DeviceCodeStore
from m365sim.entra.refresh_store import RefreshTokenStore

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

DAY_S = 86_400


@dataclass
class EntraSettings:
    """Knobs of the simulated Entra ID (defaults follow Microsoft's documented values)."""

    # v2-oauth2-device-code.md: the user has 15 minutes; clients poll every `interval` s.
    device_code_lifetime_s: int = 900
    device_code_interval_s: int = 5
    # refresh-tokens.md: 90 days for everything but SPAs; we expire on inactivity.
    refresh_token_inactivity_s: int = 90 * DAY_S
    # A secret younger than this is refused with AADSTS7000215 (propagation delay; the
    # length is our choice, see docs/simulator/entra.md).
    new_secret_delay_s: float = 60.0
    # Leeway for the nbf/exp of client assertions (the usual five minutes of clock skew).
    assertion_clock_skew_s: int = 300
    # True: any second use of a jti is refused. False (default): only a jti reused with a
    # different assertion is; MSAL re-sends one cached assertion for up to ten minutes
    # and Entra accepts that.
    strict_assertion_jti: bool = False
    id_token_lifetime_s: int = 3600
    user_code_length: int = 9


@dataclass
class EntraState:
    """Settings and in-memory stores of one simulator's Entra ID."""

    settings: EntraSettings = field(default_factory=EntraSettings)
    refresh_tokens: RefreshTokenStore = field(default_factory=RefreshTokenStore)
    device_codes: DeviceCodeStore = field(default_factory=DeviceCodeStore)
    assertion_ids: AssertionLedger = field(default_factory=AssertionLedger)


_STATES: WeakKeyDictionary[Simulator, EntraState] = WeakKeyDictionary()


def entra_of(sim: Simulator) -> EntraState:
    """The Entra state of `sim`, created on first use (the Simulator itself stays unaware)."""
    state = _STATES.get(sim)
    if state is None:
        state = _STATES[sim] = EntraState()
    return state
