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
    # The mailbox's automatic replies (out of office) count as an oof event while they are on.
    automatic_replies: bool = False


@dataclass(frozen=True, slots=True)
class AutomaticReplies:
    """A mailbox's automatic-reply setting (resources/automaticrepliessetting.md)."""

    status: str  # disabled, alwaysEnabled, scheduled (any case)
    start: float | None = None  # the scheduled window, POSIX seconds
    end: float | None = None


AUTOMATIC_REPLIES_ID = "automatic-replies"


def automatic_reply_event(replies: AutomaticReplies, now: float,
                          horizon: float) -> CalendarEvent | None:
    """The automatic replies as an out-of-office event, or None while they are off.

    A scheduled window is an event of its own times; replies switched on without a window
    last as far as the calendar is read ahead (`horizon` seconds), renewed at each read. No
    subject: the reply message is mail text, not a note for the PBX.
    """
    status = replies.status.casefold()
    if status == "alwaysenabled":
        return CalendarEvent(AUTOMATIC_REPLIES_ID, "", 0.0, now + horizon, show_as="oof")
    if status == "scheduled" and replies.start is not None and replies.end is not None \
            and replies.end > now:
        return CalendarEvent(AUTOMATIC_REPLIES_ID, "", replies.start, replies.end,
                             show_as="oof")
    return None


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
