"""Between PBX presence / line state and Asterisk's device and presence states (pure).

Asterisk's values: device states in `main/devicestate.c` (NOT_INUSE, INUSE, BUSY, RINGING,
RINGINUSE, ONHOLD, UNAVAILABLE, INVALID, UNKNOWN), presence states in `main/presencestate.c`
(not_set, unavailable, available, away, xa, chat, dnd). A hint lights a BLF from its devices
only: standard dialog-info and PIDF bodies carry no presence state (res/res_pjsip/
presence_xml.c), so the custom device carries what a phone's lamp shows, and CustomPresence
the words for AMI/ARI clients and Digium/Sangoma phones.
"""

from __future__ import annotations

import base64

from m365pbx.core.presence import LineState, PbxPresence

__all__ = ["DEVICE_BY_PRESENCE", "device_state_for", "encode_presence", "line_state_of",
           "presence_value"]

# A registered phone's idle device outweighs a Custom UNAVAILABLE in the hint, so only
# BUSY/INUSE/RINGING/ONHOLD can light a lamp; the issue asks for BUSY when a person is busy.
DEVICE_BY_PRESENCE: dict[PbxPresence, str] = {
    PbxPresence.ONLINE: "NOT_INUSE",
    PbxPresence.AWAY: "NOT_INUSE",
    PbxPresence.BUSY: "BUSY",
    PbxPresence.ON_THE_PHONE: "BUSY",
    PbxPresence.MEETING: "BUSY",
    PbxPresence.DND: "BUSY",
}

# Asterisk has no "busy" presence: the nearest state, and our word as its subtype.
_PRESENCE_BY_PRESENCE: dict[PbxPresence, tuple[str, str]] = {
    PbxPresence.ONLINE: ("not_set", ""),
    PbxPresence.AWAY: ("away", ""),
    PbxPresence.BUSY: ("away", "busy"),
    PbxPresence.ON_THE_PHONE: ("away", "on-the-phone"),
    PbxPresence.MEETING: ("away", "meeting"),
    PbxPresence.DND: ("dnd", ""),
}

_LINE_BY_DEVICE: dict[str, LineState] = {
    "NOT_INUSE": LineState.IDLE,
    "UNKNOWN": LineState.IDLE,
    "UNAVAILABLE": LineState.IDLE,
    "INVALID": LineState.IDLE,
    "INUSE": LineState.ON_THE_PHONE,
    "BUSY": LineState.ON_THE_PHONE,
    "RINGINUSE": LineState.ON_THE_PHONE,  # a call goes on while another rings
    "RINGING": LineState.RINGING,
    "ONHOLD": LineState.HELD,
}


def device_state_for(presence: PbxPresence) -> str:
    """The Custom: device state that shows `presence` on a BLF."""
    return DEVICE_BY_PRESENCE[presence]


def presence_value(presence: PbxPresence, note: str) -> str:
    """The PRESENCE_STATE() value for `presence` with `note` as its message.

    Subtype and message go base64-encoded (option `e`, funcs/func_presencestate.c): a note
    may hold commas, which would otherwise split the value.
    """
    state, subtype = _PRESENCE_BY_PRESENCE[presence]
    return encode_presence(state, subtype, note)


def encode_presence(state: str, subtype: str, message: str) -> str:
    """A PRESENCE_STATE() value from its three parts (the same parts give the same text)."""
    if not subtype and not message:
        return f"{state},,"
    encoded = [base64.b64encode(text.encode()).decode() for text in (subtype, message)]
    return f"{state},{encoded[0]},{encoded[1]},e"


def line_state_of(device_state: str) -> LineState | None:
    """The line state a phone's device state means; None for a value we do not know."""
    return _LINE_BY_DEVICE.get(device_state.strip().upper())
