"""Dialog event package bodies (RFC 4235, application/dialog-info+xml) → line state.

Choices where the RFC leaves room (also in docs/sip.md):
- A dialog in `confirmed` is a call. It counts as *held* when the local or the remote
  target carries `<param pname="+sip.rendering" pvalue="no"/>` (RFC 4235 §4.1.6.2: that
  side does not render media, i.e. it holds or is held). SDP bodies are not inspected.
- `trying`, `proceeding` and `early` are *ringing* when the person receives the call
  (direction `recipient` or no direction); when the person places the call (`initiator`)
  the line is already *on the phone*, as phones' BLF and Asterisk's device state show it.
- Line state of a person with several dialogs: on the phone if any call is not held,
  held if every call is held, ringing if only ringing dialogs exist, else idle.
- Versions (§4.1.2): a `full` document replaces the dialogs unless its version is older
  than the one held; a `partial` one is applied only if it is newer, and one that skips
  a version asks for a full state (the caller refreshes the subscription).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from m365pbx.core.presence import LineState
from m365pbx.pbx.sip.xmlsafe import XmlError, parse_xml

DIALOG_INFO_TYPE = "application/dialog-info+xml"
NS_DIALOG = "urn:ietf:params:xml:ns:dialog-info"
_STATES = frozenset({"trying", "proceeding", "early", "confirmed", "terminated"})
_RINGING = frozenset({"trying", "proceeding", "early"})


@dataclass(frozen=True, slots=True)
class DialogEntry:
    """One `<dialog>`: its id, state, direction and whether its media is held."""

    id: str
    state: str
    direction: str = ""
    held: bool = False


@dataclass(frozen=True, slots=True)
class DialogInfo:
    """A parsed dialog-info document."""

    version: int
    full: bool
    entity: str
    dialogs: tuple[DialogEntry, ...]


def _q(name: str) -> str:
    return f"{{{NS_DIALOG}}}{name}"


def _held(dialog: ET.Element) -> bool:
    for side in ("local", "remote"):
        for param in dialog.iterfind(f"{_q(side)}/{_q('target')}/{_q('param')}"):
            if (param.get("pname") or "").lower() == "+sip.rendering" and (
                param.get("pvalue") or ""
            ).strip().strip('"').lower() == "no":
                return True
    return False


def parse_dialog_info(body: bytes) -> DialogInfo:
    """Parse a dialog-info document; XmlError if unsafe, malformed or not dialog-info."""
    root = parse_xml(body)
    if root.tag != _q("dialog-info"):
        raise XmlError(f"not a dialog-info document (root {root.tag})")
    version_text = (root.get("version") or "").strip()
    if not version_text.isdigit() or len(version_text) > 12:
        raise XmlError(f"dialog-info version {version_text!r} is not a number")
    state = (root.get("state") or "").strip()
    if state not in ("full", "partial"):
        raise XmlError(f"dialog-info state {state!r} is neither full nor partial")
    dialogs: list[DialogEntry] = []
    for dialog in root.iterfind(_q("dialog")):
        dialog_id = (dialog.get("id") or "").strip()
        state_element = dialog.find(_q("state"))
        dialog_state = "" if state_element is None else (state_element.text or "").strip().lower()
        if not dialog_id or dialog_state not in _STATES:
            raise XmlError(f"dialog {dialog_id!r} has no id or an unknown state {dialog_state!r}")
        direction = (dialog.get("direction") or "").strip().lower()
        dialogs.append(DialogEntry(dialog_id, dialog_state, direction, _held(dialog)))
    return DialogInfo(int(version_text), state == "full", root.get("entity") or "", tuple(dialogs))


def line_state(dialogs: list[DialogEntry] | tuple[DialogEntry, ...]) -> LineState:
    """The person's line state from their current dialogs (rules in the module docstring)."""
    calls = [d for d in dialogs if d.state == "confirmed"]
    if calls:
        return LineState.HELD if all(d.held for d in calls) else LineState.ON_THE_PHONE
    setting_up = [d for d in dialogs if d.state in _RINGING]
    if any(d.direction == "initiator" for d in setting_up):
        return LineState.ON_THE_PHONE
    return LineState.RINGING if setting_up else LineState.IDLE


@dataclass(slots=True)
class DialogTracker:
    """The dialogs of one subscription, kept across full and partial notifications."""

    version: int | None = None
    dialogs: dict[str, DialogEntry] = field(default_factory=dict)

    def reset(self) -> None:
        """Forget everything (a new subscription starts a new version sequence)."""
        self.version = None
        self.dialogs.clear()

    def apply(self, info: DialogInfo) -> bool:
        """Fold a document in; False if it was stale or a gap needs a full state."""
        if self.version is not None and info.version < self.version:
            return False
        if info.full:
            self.dialogs.clear()
        elif self.version is not None and info.version > self.version + 1:
            return False
        self.version = info.version
        for dialog in info.dialogs:
            if dialog.state == "terminated":
                self.dialogs.pop(dialog.id, None)
            else:
                self.dialogs[dialog.id] = dialog
        return True

    @property
    def line_state(self) -> LineState:
        """The line state these dialogs add up to."""
        return line_state(list(self.dialogs.values()))


def dialog_info_document(
    entity: str, version: int, dialogs: list[DialogEntry], *, full: bool = True
) -> bytes:
    """A dialog-info body, e.g. for a simulated phone publishing its calls."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<dialog-info xmlns="{NS_DIALOG}" version="{int(version)}"'
        f' state="{"full" if full else "partial"}" entity={quoteattr(entity)}>\n'
    ]
    for dialog in dialogs:
        direction = f" direction={quoteattr(dialog.direction)}" if dialog.direction else ""
        held = (
            '<local><target uri="sip:phone.invalid">'
            '<param pname="+sip.rendering" pvalue="no"/></target></local>'
            if dialog.held
            else ""
        )
        parts.append(
            f" <dialog id={quoteattr(dialog.id)}{direction}>"
            f"<state>{escape(dialog.state)}</state>{held}</dialog>\n"
        )
    parts.append("</dialog-info>\n")
    return "".join(parts).encode("utf-8")
