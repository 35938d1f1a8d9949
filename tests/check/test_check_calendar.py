"""`m365pbx check` for calendar → PBX: the credential and the grant it needs (issue 22)."""

from __future__ import annotations

from pathlib import Path

from m365pbx.check import Status
from m365sim.clock import VirtualClock
from m365sim.server import RunningServer
from tests.check.conftest import about, check, write_config

CALENDAR_ON = [{"name": "switchboard", "kind": "api", "tenant": "contoso",
                "calendar": {"enabled": True}}]


async def test_calendar_on_without_a_calendars_read_credential_is_a_warning(
        server: RunningServer, check_clock: VirtualClock, tmp_path: Path) -> None:
    findings = await check(write_config(server, tmp_path, pbx_connections=CALENDAR_ON),
                           check_clock)
    said = about(findings, "no credential declares calendars.read")
    assert [f.status for f in said] == [Status.WARN]
    assert "switchboard" in said[0].message and "calendar.enabled" in said[0].fix


async def test_calendar_on_with_an_app_lacking_calendars_read_fails_with_the_fix(
        server: RunningServer, check_clock: VirtualClock, tmp_path: Path) -> None:
    path = write_config(server, tmp_path, pbx_connections=CALENDAR_ON,
                        permissions=("presence.read", "presence.write", "users.read",
                                     "calendars.read"))
    findings = await check(path, check_clock)
    lacking = about(findings, "lacks the application permission Calendars.Read")
    assert [f.status for f in lacking] == [Status.FAIL], findings
    assert "calendar → PBX" in lacking[0].message
    assert "adminconsent" in lacking[0].fix


async def test_automatic_replies_on_ask_for_mailbox_settings_read(
        server: RunningServer, check_clock: VirtualClock, tmp_path: Path) -> None:
    replies_on = [{**CALENDAR_ON[0], "calendar": {"enabled": True, "automatic_replies": True}}]
    path = write_config(server, tmp_path, pbx_connections=replies_on,
                        permissions=("presence.read", "presence.write", "users.read",
                                     "calendars.read"))
    findings = await check(path, check_clock)
    lacking = about(findings, "lacks the application permission MailboxSettings.Read")
    assert [f.status for f in lacking] == [Status.FAIL], findings
    assert "automatic replies" in lacking[0].message
    # Without the switch nobody asks for it.
    path = write_config(server, tmp_path, pbx_connections=CALENDAR_ON,
                        permissions=("presence.read", "presence.write", "users.read",
                                     "calendars.read"))
    assert not about(await check(path, check_clock), "MailboxSettings.Read")
