"""The test Asterisk itself: it starts from the cached chroot and shows what hints promise."""

from __future__ import annotations

from tests.pbx.asterisk.server import AsteriskServer


def test_a_custom_device_in_the_hint_makes_the_extension_busy(asterisk: AsteriskServer) -> None:
    asterisk.ami("Setvar", Variable="DEVICE_STATE(Custom:2003-teams)", Value="BUSY")
    status = asterisk.ami("ExtensionState", Exten="2003", Context="internal")[0]
    assert status["Hint"] == "PJSIP/2003&Custom:2003-teams,CustomPresence:2003"
    assert status["StatusText"] == "Busy"
    asterisk.ami("Setvar", Variable="DEVICE_STATE(Custom:2003-teams)", Value="NOT_INUSE")
    assert asterisk.getvar("DEVICE_STATE(Custom:2003-teams)") == "NOT_INUSE"
