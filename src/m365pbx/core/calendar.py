"""Which calendar events show in the PBX, and as what: pure selection into CalendarBlocks.

An event shows while it lasts when it claims the person's time: `showAs` busy always,
tentative and workingElsewhere where switched on, oof where switched on, free and unknown
never; cancelled and declined events never. What it shows is the mapping's calendar rule
for its `showAs` (`calendar_to_pbx`: busy and tentative → meeting, oof and workingElsewhere
→ away by default); a rule giving `online` switches such events off.
Private and confidential events never give their subject: only `private_note` (or nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from m365pbx.core.policy.state import CalendarBlock
from m365pbx.core.presence import PbxPresence, ShowAs, lookup_show_as

# Graph's `sensitivity` values whose subject the owner does not share (graph.md 6).
PRIVATE_SENSITIVITIES = frozenset({"private", "confidential"})
DEFAULT_PRIVATE_NOTE = "Private appointment"


@dataclass(frozen=True, slots=True)
class CalendarEvent:
    """One event (a single event or one occurrence) as Graph's calendarView gave it."""

    id: str
    subject: str
    start: float  # POSIX seconds
    end: float
    show_as: str = "busy"  # free, tentative, busy, oof, workingElsewhere, unknown
    is_all_day: bool = False
    is_cancelled: bool = False
    response: str = "none"  # responseStatus.response: organizer, accepted, declined, ...
    sensitivity: str = "normal"  # normal, personal, private, confidential


@dataclass(frozen=True, slots=True)
class CalendarRules:
    """Which events count, per PBX connection (`calendar:` in the configuration)."""

    show_tentative: bool = True
    show_working_elsewhere: bool = False
    # Busy or tentative events lasting whole days (a conference, a training).
    all_day_events: bool = False
    # Out-of-office events, timed or all-day, show as the mapping's OutOfOffice (away).
    out_of_office: bool = True
    subject_as_note: bool = True
    # The note of a private or confidential event; "" shows none.
    private_note: str = DEFAULT_PRIVATE_NOTE


def counted_as(event: CalendarEvent, rules: CalendarRules) -> ShowAs | None:
    """The `showAs` an event shows as (its calendar rule decides what), or None: it does not
    count."""
    if event.is_cancelled or event.response.casefold() == "declined":
        return None
    if event.end <= event.start:
        return None
    show_as = lookup_show_as(event.show_as)
    if show_as is ShowAs.OOF:
        return show_as if rules.out_of_office else None
    if event.is_all_day and not rules.all_day_events:
        return None
    if show_as is ShowAs.BUSY:
        return show_as
    if show_as is ShowAs.TENTATIVE:
        return show_as if rules.show_tentative else None
    if show_as is ShowAs.WORKING_ELSEWHERE:
        return show_as if rules.show_working_elsewhere else None
    return None  # free, unknown, and values Graph may add later


def note_for(event: CalendarEvent, rules: CalendarRules) -> str:
    """The PBX note an event may give: its subject, or the private note for private events."""
    if event.sensitivity.casefold() in PRIVATE_SENSITIVITIES:
        return rules.private_note
    return event.subject if rules.subject_as_note else ""


def select_blocks(events: Iterable[CalendarEvent], rules: CalendarRules,
                  to_pbx: Callable[[ShowAs], PbxPresence]) -> tuple[CalendarBlock, ...]:
    """The blocks (sorted by start) that show in the PBX; `to_pbx`: the mapping's calendar
    rules."""
    blocks = []
    for event in events:
        show_as = counted_as(event, rules)
        if show_as is None:
            continue
        presence = to_pbx(show_as)
        if presence is PbxPresence.ONLINE:
            continue  # a rule that sends such events to online: nothing to show
        blocks.append(CalendarBlock(presence, event.start, event.end, note_for(event, rules)))
    blocks.sort(key=lambda block: (block.start, block.end))
    return tuple(blocks)
