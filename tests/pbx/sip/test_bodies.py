"""PIDF (RFC 3863 + RPID), dialog-info (RFC 4235) and the XML parser that reads them."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from m365pbx.core.presence import LineState, PbxPresence
from m365pbx.pbx.sip.dialoginfo import (
    DialogEntry,
    DialogTracker,
    dialog_info_document,
    line_state,
    parse_dialog_info,
)
from m365pbx.pbx.sip.pidf import (
    DEFAULT_NOTES,
    NS_DM,
    NS_PIDF,
    NS_RPID,
    PhonePresence,
    parse_pidf,
    pidf_document,
)
from m365pbx.pbx.sip.xmlsafe import XmlError, parse_xml

ENTITY = "sip:bob@example.com"

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:x@y"><note>&lol4;</note></presence>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE presence [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:x@y"><note>&xxe;</note></presence>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE presence SYSTEM "http://127.0.0.1:9/evil.dtd">
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:x@y"/>"""
PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]><d/>"""
QUADRATIC = (
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "'
    + b"x" * 5000
    + b'">]><d>'
    + b"&a;" * 5000
    + b"</d>"
)
BOMBS = [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, PARAMETER_ENTITY, QUADRATIC]


def q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


@pytest.mark.parametrize("bomb", BOMBS)
def test_xml_bombs_and_entities_are_refused(bomb: bytes) -> None:
    with pytest.raises(XmlError):
        parse_xml(bomb)
    with pytest.raises(XmlError):
        parse_pidf(bomb)
    with pytest.raises(XmlError):
        parse_dialog_info(bomb.replace(b"presence", b"dialog-info"))


def test_xml_limits_and_malformed_input() -> None:
    with pytest.raises(XmlError, match="deeper"):
        parse_xml(b"<a>" * 100 + b"</a>" * 100)
    with pytest.raises(XmlError, match="elements"):
        parse_xml(b"<a>" + b"<b/>" * 6000 + b"</a>")
    with pytest.raises(XmlError, match="exceeds"):
        parse_xml(b"<a>" + b" " * 70_000 + b"</a>")
    for garbage in (b"", b"not xml", b"<a>", b"<a></b>", b"\xff\xfe<", b"<a>&nope;</a>"):
        with pytest.raises(XmlError):
            parse_xml(garbage)
    root = parse_xml('<a xmlns="urn:x" xmlns:y="urn:y" y:k="v">é<y:b/></a>'.encode())
    assert root.tag == "{urn:x}a" and root.get("{urn:y}k") == "v" and root.text == "é"


EXPECTED_ACTIVITIES = {
    PbxPresence.AWAY: ["away"],
    PbxPresence.BUSY: ["busy"],
    PbxPresence.DND: ["busy", "other"],
    PbxPresence.ON_THE_PHONE: ["on-the-phone"],
    PbxPresence.MEETING: ["meeting"],
}


@pytest.mark.parametrize("presence", list(EXPECTED_ACTIVITIES))
def test_pidf_body_for_every_pbx_presence_matches_the_mapping_table(
    presence: PbxPresence,
) -> None:
    body = pidf_document(ENTITY, presence)
    root = ET.fromstring(body)  # a second, independent parser
    assert root.tag == q(NS_PIDF, "presence") and root.get("entity") == ENTITY
    tuples = root.findall(q(NS_PIDF, "tuple"))
    persons = root.findall(q(NS_DM, "person"))
    assert len(tuples) == 1 and len(persons) == 1
    assert tuples[0].findtext(f"{q(NS_PIDF, 'status')}/{q(NS_PIDF, 'basic')}") == "open"
    activities = persons[0].find(q(NS_RPID, "activities"))
    assert activities is not None
    assert [child.tag.rpartition("}")[2] for child in activities] == EXPECTED_ACTIVITIES[presence]
    assert persons[0].findtext(q(NS_DM, "note")) == DEFAULT_NOTES[presence]
    if presence is PbxPresence.DND:
        assert activities.findtext(q(NS_RPID, "other")) == "dnd"
        assert persons[0].findtext(q(NS_DM, "note")) == "Do not disturb"
    assert parse_pidf(body).presence is PbxPresence.ONLINE  # our own elements are skipped


def test_online_has_no_body_and_notes_are_escaped() -> None:
    with pytest.raises(ValueError, match="removing"):
        pidf_document(ENTITY, PbxPresence.ONLINE)
    body = pidf_document('sip:o"d<d>@x', PbxPresence.MEETING, 'Q3 <review> & "plan"\x00\x07 ')
    root = ET.fromstring(body)
    assert root.get("entity") == 'sip:o"d<d>@x'
    assert root.findtext(f"{q(NS_DM, 'person')}/{q(NS_DM, 'note')}") == 'Q3 <review> & "plan"'
    long = pidf_document(ENTITY, PbxPresence.AWAY, "x" * 5000)
    assert (
        len(ET.fromstring(long).findtext(f"{q(NS_DM, 'person')}/{q(NS_DM, 'note')}") or "") == 512
    )


def phone_pidf(activities: str, note: str = "", basic: str = "open", prefix: str = "ph") -> bytes:
    person_note = f"<dm:note>{note}</dm:note>" if note else ""
    return (
        '<?xml version="1.0"?>'
        f'<presence xmlns="{NS_PIDF}" xmlns:dm="{NS_DM}" xmlns:rpid="{NS_RPID}" entity="{ENTITY}">'
        f'<tuple id="{prefix}-t"><status><basic>{basic}</basic></status></tuple>'
        f'<dm:person id="{prefix}-p"><rpid:activities>{activities}</rpid:activities>'
        f"{person_note}</dm:person></presence>"
    ).encode()


@pytest.mark.parametrize(
    ("activities", "note", "expected"),
    [
        ("<rpid:busy/><rpid:other>dnd</rpid:other>", "", PbxPresence.DND),
        ("<rpid:other>Do Not Disturb</rpid:other>", "", PbxPresence.DND),
        ("<rpid:busy/>", "Do not disturb", PbxPresence.DND),
        ("<rpid:busy/>", "In the lab", PbxPresence.BUSY),
        ("<rpid:away/>", "", PbxPresence.AWAY),
        ("<rpid:vacation/>", "", PbxPresence.AWAY),
        ("<rpid:meeting/>", "", PbxPresence.MEETING),
        ("<rpid:appointment/>", "", PbxPresence.MEETING),
        ("<rpid:on-the-phone/>", "", PbxPresence.ON_THE_PHONE),
        ("<rpid:away/><rpid:on-the-phone/>", "", PbxPresence.ON_THE_PHONE),
        ("<rpid:unknown/>", "", PbxPresence.ONLINE),
        ("", "", PbxPresence.ONLINE),
    ],
)
def test_reading_what_a_phone_published(activities: str, note: str, expected: PbxPresence) -> None:
    phone = parse_pidf(phone_pidf(activities, note))
    assert phone.presence is expected
    assert phone.note == note
    assert phone.open


def test_reading_skips_our_own_publication_in_an_aggregate() -> None:
    ours = pidf_document(ENTITY, PbxPresence.DND)
    theirs = phone_pidf("<rpid:away/>", "Lunch")
    root = ET.fromstring(theirs)
    for element in ET.fromstring(ours):
        root.append(element)
    phone = parse_pidf(ET.tostring(root))
    assert phone == PhonePresence(PbxPresence.AWAY, "Lunch", True)
    closed = parse_pidf(phone_pidf("", basic="closed"))
    assert closed.presence is PbxPresence.ONLINE and not closed.open
    with pytest.raises(XmlError, match="not a PIDF"):
        parse_pidf(b'<presence xmlns="urn:other"/>')


# RFC 4235 §5 examples, shortened.
RFC4235_CONFIRMED = b"""<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full"
  entity="sip:alice@example.com">
 <dialog id="as7d900as8" call-id="a84b4c76e66710" local-tag="1928301774"
   remote-tag="456887766" direction="initiator">
  <state>confirmed</state>
  <duration>274</duration>
  <local><identity>sip:alice@example.com</identity>
   <target uri="sip:alice@pc33.example.com"><param pname="isfocus" pvalue="true"/></target>
  </local>
  <remote><identity>sip:bob@example.org</identity><target uri="sip:bobster@phone21.example.org"/>
  </remote>
 </dialog>
</dialog-info>"""


def dialog_doc(*dialogs: str, version: int = 1, state: str = "full") -> bytes:
    return (
        f'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="{version}" '
        f'state="{state}" entity="{ENTITY}">{"".join(dialogs)}</dialog-info>'
    ).encode()


def dialog(ident: str, state: str, direction: str = "", held: str = "") -> str:
    attribute = f' direction="{direction}"' if direction else ""
    param = '<param pname="+sip.rendering" pvalue="no"/>'
    target = f'<{held}><target uri="sip:x@y">{param}</target></{held}>' if held else ""
    return f'<dialog id="{ident}"{attribute}><state>{state}</state>{target}</dialog>'


def test_rfc4235_example_is_a_call() -> None:
    info = parse_dialog_info(RFC4235_CONFIRMED)
    assert (info.version, info.full, info.entity) == (0, True, "sip:alice@example.com")
    assert info.dialogs == (DialogEntry("as7d900as8", "confirmed", "initiator", False),)
    assert line_state(info.dialogs) is LineState.ON_THE_PHONE


@pytest.mark.parametrize(
    ("dialogs", "expected"),
    [
        ([], LineState.IDLE),
        ([dialog("a", "terminated")], LineState.IDLE),
        ([dialog("a", "early", "recipient")], LineState.RINGING),
        ([dialog("a", "proceeding")], LineState.RINGING),
        ([dialog("a", "trying", "recipient")], LineState.RINGING),
        ([dialog("a", "early", "initiator")], LineState.ON_THE_PHONE),
        ([dialog("a", "confirmed", "recipient")], LineState.ON_THE_PHONE),
        ([dialog("a", "confirmed", held="local")], LineState.HELD),
        ([dialog("a", "confirmed", held="remote")], LineState.HELD),
        (
            [dialog("a", "confirmed", held="local"), dialog("b", "confirmed")],
            LineState.ON_THE_PHONE,
        ),
        (
            [dialog("a", "confirmed", held="local"), dialog("b", "early", "recipient")],
            LineState.HELD,
        ),
    ],
)
def test_line_state_from_dialogs(dialogs: list[str], expected: LineState) -> None:
    tracker = DialogTracker()
    assert tracker.apply(parse_dialog_info(dialog_doc(*dialogs)))
    assert tracker.line_state is expected


def test_tracker_full_partial_stale_and_gaps() -> None:
    tracker = DialogTracker()
    assert tracker.apply(
        parse_dialog_info(dialog_doc(dialog("a", "early", "recipient"), version=3))
    )
    assert tracker.line_state is LineState.RINGING
    partial = dialog_doc(dialog("a", "confirmed"), version=4, state="partial")
    assert tracker.apply(parse_dialog_info(partial))
    assert tracker.line_state is LineState.ON_THE_PHONE
    stale = dialog_doc(dialog("a", "terminated"), version=2, state="partial")
    assert not tracker.apply(parse_dialog_info(stale))
    assert tracker.line_state is LineState.ON_THE_PHONE
    gap = dialog_doc(dialog("a", "terminated"), version=9, state="partial")
    assert not tracker.apply(parse_dialog_info(gap))
    ended = dialog_doc(dialog("a", "terminated"), version=5, state="partial")
    assert tracker.apply(parse_dialog_info(ended))
    assert tracker.line_state is LineState.IDLE
    tracker.reset()
    assert tracker.apply(parse_dialog_info(dialog_doc(dialog("b", "confirmed"), version=0)))


@pytest.mark.parametrize(
    "body",
    [
        dialog_doc(version="x"),  # type: ignore[arg-type]
        dialog_doc(state="sometimes"),
        dialog_doc(dialog("a", "dancing")),
        dialog_doc("<dialog><state>confirmed</state></dialog>"),
        b'<dialog-info xmlns="urn:other" version="1" state="full"/>',
        b"<dialog-info",
    ],
)
def test_bad_dialog_info_is_refused(body: bytes) -> None:
    with pytest.raises(XmlError):
        parse_dialog_info(body)


def test_dialog_info_builder_round_trips() -> None:
    dialogs = [DialogEntry("c1", "confirmed", "recipient", True), DialogEntry("c2", "early")]
    info = parse_dialog_info(dialog_info_document(ENTITY, 7, dialogs))
    assert info.dialogs == tuple(dialogs) and info.version == 7 and info.full
