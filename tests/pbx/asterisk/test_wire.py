"""The AMI wire format and the state tables, without a server."""

from __future__ import annotations

import base64

import pytest

from m365pbx.core.presence import LineState, PbxPresence
from m365pbx.pbx.asterisk import AmiParser, AmiProtocolError, encode_action
from m365pbx.pbx.asterisk.states import device_state_for, line_state_of, presence_value
from m365pbx.pbx.asterisk.users import parse_callerid

STREAM = (b"Asterisk Call Manager/11.0.0\r\n"
          b"Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n"
          b"Event: DeviceStateChange\r\nPrivilege: call,all\r\nDevice: PJSIP/2001\r\n"
          b"State: INUSE\r\n\r\n")


def test_messages_split_anywhere_come_out_whole() -> None:
    for cut in range(1, len(STREAM)):
        parser = AmiParser()
        messages = [*parser.feed(STREAM[:cut]), *parser.feed(STREAM[cut:])]
        assert parser.banner == "Asterisk Call Manager/11.0.0"
        assert [m.response or m.event for m in messages] == ["Success", "DeviceStateChange"]
        assert messages[1].get("device") == "PJSIP/2001"  # keys without regard to case


def test_a_value_with_a_line_break_is_refused_rather_than_sent() -> None:
    # "\r\nAction: Originate" inside a note would otherwise become a second action.
    with pytest.raises(ValueError, match="line break"):
        encode_action("Setvar", {"Value": "x\r\nAction: Originate"}, "1")
    assert encode_action("Ping", {}, "7") == b"Action: Ping\r\nActionID: 7\r\n\r\n"


def test_an_endless_line_is_a_protocol_error() -> None:
    parser = AmiParser()
    with pytest.raises(AmiProtocolError):
        list(parser.feed(b"x" * 70_000))


def test_presence_values_carry_any_note_safely() -> None:
    assert presence_value(PbxPresence.ONLINE, "") == "not_set,,"
    assert presence_value(PbxPresence.DND, "") == "dnd,,"
    state, subtype, message, flag = presence_value(PbxPresence.MEETING, "Budget, Q3").split(",")
    assert (state, flag) == ("away", "e")
    assert base64.b64decode(subtype).decode() == "meeting"
    assert base64.b64decode(message).decode() == "Budget, Q3"


def test_device_and_line_state_tables() -> None:
    assert device_state_for(PbxPresence.DND) == "BUSY"
    assert device_state_for(PbxPresence.ONLINE) == "NOT_INUSE"
    assert line_state_of("INUSE") is LineState.ON_THE_PHONE
    assert line_state_of("ringing") is LineState.RINGING
    assert line_state_of("ONHOLD") is LineState.HELD
    assert line_state_of("UNAVAILABLE") is LineState.IDLE
    assert line_state_of("SOMETHING_NEW") is None


@pytest.mark.parametrize(("text", "expected"), [
    ('"Anna Schmidt" <2001>', ("Anna Schmidt", "2001")),
    ('"O\\"Brien, Pat" <2002>', ('O"Brien, Pat', "2002")),
    ("Ben Weber <2003>", ("Ben Weber", "2003")),
    ("<2004>", ("", "2004")),
    ("", ("", "")),
])
def test_caller_ids(text: str, expected: tuple[str, str]) -> None:
    assert parse_callerid(text) == expected
