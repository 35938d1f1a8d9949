"""PIDF presence documents (RFC 3863) with RPID activities (RFC 4480), both directions.

Writing follows the table "PBX presence → SIP PIDF" of docs/mapping.md: one
`<tuple>` with `<basic>open</basic>` and one `<dm:person>` with the activities and a note.
RPID has no "do not disturb", so dnd is `<rpid:busy/>` plus `<rpid:other>dnd</rpid:other>`.

Reading (what a person set on the phone) skips the elements we published ourselves (their
ids start with `OWN_ID_PREFIX`), because the server aggregates every publication of a
presentity into one NOTIFY body and our own would otherwise echo back.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.sip.xmlsafe import XmlError, parse_xml

PIDF_TYPE = "application/pidf+xml"
NS_PIDF = "urn:ietf:params:xml:ns:pidf"
NS_DM = "urn:ietf:params:xml:ns:pidf:data-model"
NS_RPID = "urn:ietf:params:xml:ns:pidf:rpid"
OWN_ID_PREFIX = "m365pbx-"
MAX_NOTE = 512

DEFAULT_NOTES: dict[PbxPresence, str] = {
    PbxPresence.AWAY: "Away",
    PbxPresence.BUSY: "Busy",
    PbxPresence.DND: "Do not disturb",
    PbxPresence.ON_THE_PHONE: "On the phone",
    PbxPresence.MEETING: "In a meeting",
}

_ACTIVITIES: dict[PbxPresence, str] = {
    PbxPresence.AWAY: "<rpid:away/>",
    PbxPresence.BUSY: "<rpid:busy/>",
    PbxPresence.DND: "<rpid:busy/><rpid:other>dnd</rpid:other>",
    PbxPresence.ON_THE_PHONE: "<rpid:on-the-phone/>",
    PbxPresence.MEETING: "<rpid:meeting/>",
}

# XML 1.0 forbids most C0 control characters, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def clean_note(note: str) -> str:
    """A note safe to put in XML: control characters removed, at most MAX_NOTE characters."""
    return _NOT_XML.sub("", note).strip()[:MAX_NOTE]


def pidf_document(entity: str, presence: PbxPresence, note: str = "") -> bytes:
    """The PIDF body that shows `presence` for `entity`; ValueError for `online`.

    `online` means "nothing set": the publication is removed instead (Expires: 0).
    """
    if presence is PbxPresence.ONLINE:
        raise ValueError("'online' is shown by removing the publication, not by a body")
    text = clean_note(note) or DEFAULT_NOTES[presence]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<presence xmlns="{NS_PIDF}" xmlns:dm="{NS_DM}" xmlns:rpid="{NS_RPID}"'
        f" entity={quoteattr(entity)}>\n"
        f' <tuple id="{OWN_ID_PREFIX}tuple"><status><basic>open</basic></status></tuple>\n'
        f' <dm:person id="{OWN_ID_PREFIX}person">'
        f"<rpid:activities>{_ACTIVITIES[presence]}</rpid:activities>"
        f"<dm:note>{escape(text)}</dm:note></dm:person>\n"
        "</presence>\n"
    ).encode()


def pidf_nothing_set(entity: str) -> bytes:
    """A body of ours that shows nothing set: our open tuple, no activity, no note.

    It stands in for a removal while an older publication of ours (whose ETag was lost)
    may still be shown: the server shows only the newer of the two (same tuple id).
    """
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<presence xmlns="{NS_PIDF}" entity={quoteattr(entity)}>\n'
        f' <tuple id="{OWN_ID_PREFIX}tuple"><status><basic>open</basic></status></tuple>\n'
        "</presence>\n"
    ).encode()


@dataclass(frozen=True, slots=True)
class PhonePresence:
    """What a PIDF document says, reduced to PBX presence, note and basic status."""

    presence: PbxPresence
    note: str = ""
    open: bool = True


# RFC 4480 §3.2 activities, reduced to PBX presence; activities not listed add nothing.
_FROM_ACTIVITY: dict[str, PbxPresence] = {
    "away": PbxPresence.AWAY,
    "breakfast": PbxPresence.AWAY,
    "dinner": PbxPresence.AWAY,
    "meal": PbxPresence.AWAY,
    "holiday": PbxPresence.AWAY,
    "vacation": PbxPresence.AWAY,
    "permanent-absence": PbxPresence.AWAY,
    "sleeping": PbxPresence.AWAY,
    "travel": PbxPresence.AWAY,
    "in-transit": PbxPresence.AWAY,
    "busy": PbxPresence.BUSY,
    "presentation": PbxPresence.BUSY,
    "performance": PbxPresence.BUSY,
    "meeting": PbxPresence.MEETING,
    "appointment": PbxPresence.MEETING,
    "on-the-phone": PbxPresence.ON_THE_PHONE,
}
# Strongest first, the order core/policy uses when two sources propose a PBX presence.
_STRENGTH = [
    PbxPresence.DND,
    PbxPresence.ON_THE_PHONE,
    PbxPresence.MEETING,
    PbxPresence.BUSY,
    PbxPresence.AWAY,
]
_DND_WORDS = re.compile(r"^\s*(dnd|do[\s-]*not[\s-]*disturb)\s*$", re.IGNORECASE)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _namespace(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def parse_pidf(body: bytes) -> PhonePresence:
    """Read a PIDF body (ignoring our own elements); XmlError if it is not safe PIDF."""
    root = parse_xml(body)
    if root.tag != f"{{{NS_PIDF}}}presence":
        raise XmlError(f"not a PIDF document (root {root.tag})")
    found: set[PbxPresence] = set()
    notes: list[str] = []
    is_open = False
    for element in root:
        if element.get("id", "").startswith(OWN_ID_PREFIX):
            continue
        name = _local(element.tag)
        if name == "tuple":
            basic = element.find(f"{{{NS_PIDF}}}status/{{{NS_PIDF}}}basic")
            is_open = is_open or (basic is not None and (basic.text or "").strip() == "open")
        for note in element.iter():
            if _local(note.tag) == "note" and (note.text or "").strip():
                notes.append(clean_note(note.text or ""))
        for activities in element.iter(f"{{{NS_RPID}}}activities"):
            found |= _activities(activities, notes)
    presence = next((value for value in _STRENGTH if value in found), PbxPresence.ONLINE)
    return PhonePresence(presence, notes[0] if notes else "", is_open)


def _activities(activities: ET.Element, notes: list[str]) -> set[PbxPresence]:
    found: set[PbxPresence] = set()
    words = [_local(child.tag) for child in activities if _namespace(child.tag) == NS_RPID]
    others = [(child.text or "").strip() for child in activities if _local(child.tag) == "other"]
    for word in words:
        if word in _FROM_ACTIVITY:
            found.add(_FROM_ACTIVITY[word])
    # Phones say dnd as rpid:other "dnd" or as busy with a "Do not disturb" note.
    if any(_DND_WORDS.match(text) for text in others) or (
        "busy" in words and any(_DND_WORDS.match(note) for note in notes)
    ):
        found.add(PbxPresence.DND)
    return found
