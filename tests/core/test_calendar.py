"""Which calendar events show in the PBX (core/calendar.py), and how they meet Teams."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from m365pbx.core.calendar import (
    DEFAULT_PRIVATE_NOTE,
    CalendarEvent,
    CalendarRules,
    select_blocks,
)
from m365pbx.core.policy import (
    CalendarBlock,
    PersonState,
    TeamsReading,
    decide,
    observe_teams,
    set_calendar,
)
from m365pbx.core.presence import Activity, Availability, PbxPresence, ShowAs, TeamsPresence
from tests.core.policy_world import DEFAULT_CONFIG

TO_PBX = DEFAULT_CONFIG.mapping.calendar_to_pbx
RULES = CalendarRules()
START = 1_800_000_000.0
EVENT = CalendarEvent("e1", "Board", START, START + 1800)


def blocks(*events: CalendarEvent, rules: CalendarRules = RULES) -> tuple[CalendarBlock, ...]:
    """The blocks the default mapping gives these events."""
    return select_blocks(events, rules, TO_PBX)


def test_a_busy_event_is_a_meeting_with_its_subject() -> None:
    assert blocks(EVENT) == (CalendarBlock(PbxPresence.MEETING, START, START + 1800, "Board"),)


def test_free_cancelled_declined_and_unknown_events_never_show() -> None:
    assert blocks(replace(EVENT, show_as="free")) == ()
    assert blocks(replace(EVENT, show_as="unknown")) == ()
    assert blocks(replace(EVENT, is_cancelled=True)) == ()
    assert blocks(replace(EVENT, response="declined")) == ()
    assert blocks(replace(EVENT, end=START)) == ()


def test_tentative_and_working_elsewhere_follow_their_switches() -> None:
    tentative = replace(EVENT, show_as="tentative")
    elsewhere = replace(EVENT, show_as="workingElsewhere")
    assert blocks(tentative)[0].presence is PbxPresence.MEETING
    assert blocks(tentative, rules=CalendarRules(show_tentative=False)) == ()
    assert blocks(elsewhere) == ()
    shown = blocks(elsewhere, rules=CalendarRules(show_working_elsewhere=True))
    assert shown[0].presence is PbxPresence.AWAY


def test_out_of_office_is_away_all_day_or_timed_unless_switched_off() -> None:
    holiday = replace(EVENT, show_as="oof", is_all_day=True, end=START + 86400)
    assert blocks(holiday)[0].presence is PbxPresence.AWAY
    assert blocks(replace(holiday, is_all_day=False))[0].presence is PbxPresence.AWAY
    assert blocks(holiday, rules=CalendarRules(out_of_office=False)) == ()


def test_all_day_busy_events_show_only_where_switched_on() -> None:
    conference = replace(EVENT, is_all_day=True, end=START + 86400)
    assert blocks(conference) == ()
    assert blocks(conference, rules=CalendarRules(all_day_events=True))[0].presence is (
        PbxPresence.MEETING)


def test_private_events_never_give_their_subject() -> None:
    for sensitivity in ("private", "confidential", "Private"):
        secret = replace(EVENT, subject="Doctor", sensitivity=sensitivity)
        assert blocks(secret)[0].subject == DEFAULT_PRIVATE_NOTE
        assert blocks(secret, rules=CalendarRules(private_note=""))[0].subject == ""
    assert blocks(replace(EVENT, sensitivity="personal"))[0].subject == "Board"
    assert blocks(EVENT, rules=CalendarRules(subject_as_note=False))[0].subject == ""


def test_the_mapping_decides_what_a_meeting_shows() -> None:
    def everything_busy(_show_as: ShowAs) -> PbxPresence:
        return PbxPresence.BUSY

    def nothing(_show_as: ShowAs) -> PbxPresence:
        return PbxPresence.ONLINE

    assert select_blocks([EVENT], RULES, everything_busy)[0].presence is PbxPresence.BUSY
    assert select_blocks([EVENT], RULES, nothing) == ()


def test_teams_showing_the_same_meeting_keeps_the_subject_as_note() -> None:
    # Teams reports InAMeeting (from the same calendar) without a status message: the PBX
    # note was the subject and stays so (it vanished at Teams' next report before).
    state = set_calendar(PersonState(), blocks(EVENT))
    meeting = TeamsPresence(Availability.BUSY, Activity.IN_A_MEETING)
    state, _ = observe_teams(state, TeamsReading(meeting, START + 5, "1", status_message=""),
                             START + 5, DEFAULT_CONFIG)
    plan = decide(state, START + 5, DEFAULT_CONFIG)
    assert plan.pbx is not None and (plan.pbx.presence, plan.pbx.note) == (
        PbxPresence.MEETING, "Board")


SHOW_AS = st.sampled_from(["free", "tentative", "busy", "oof", "workingElsewhere", "unknown",
                           "somethingNew"])
SENSITIVITY = st.sampled_from(["normal", "personal", "private", "confidential"])
RESPONSE = st.sampled_from(["none", "organizer", "accepted", "tentativelyAccepted",
                            "declined", "notResponded"])
EVENTS = st.builds(
    CalendarEvent,
    id=st.text(max_size=5),
    subject=st.text(min_size=1, max_size=20).filter(lambda s: s != DEFAULT_PRIVATE_NOTE),
    start=st.floats(0, 1e6, allow_nan=False),
    end=st.floats(0, 1e6, allow_nan=False),
    show_as=SHOW_AS,
    is_all_day=st.booleans(),
    is_cancelled=st.booleans(),
    response=RESPONSE,
    sensitivity=SENSITIVITY,
)
RULE_SETS = st.builds(CalendarRules, show_tentative=st.booleans(),
                      show_working_elsewhere=st.booleans(), all_day_events=st.booleans(),
                      out_of_office=st.booleans(), subject_as_note=st.booleans())


@given(st.lists(EVENTS, max_size=8), RULE_SETS)
def test_selected_blocks_are_sorted_real_and_from_counting_events(
    events: list[CalendarEvent], rules: CalendarRules
) -> None:
    chosen = blocks(*events, rules=rules)
    assert list(chosen) == sorted(chosen, key=lambda b: (b.start, b.end))
    assert all(b.start < b.end and b.presence is not PbxPresence.ONLINE for b in chosen)
    counting = [e for e in events if not e.is_cancelled and e.response != "declined"
                and e.show_as not in ("free", "unknown", "somethingNew") and e.start < e.end]
    assert len(chosen) <= len(counting)


@given(st.lists(EVENTS, max_size=8), RULE_SETS)
def test_no_private_subject_ever_reaches_a_block(
    events: list[CalendarEvent], rules: CalendarRules
) -> None:
    private = {e.subject for e in events if e.sensitivity in ("private", "confidential")}
    public = {e.subject for e in events if e.sensitivity not in ("private", "confidential")}
    for block in blocks(*events, rules=rules):
        assert block.subject not in private - public


@given(EVENTS, RULE_SETS)
def test_declined_or_cancelled_never_show_whatever_the_rules(
    event: CalendarEvent, rules: CalendarRules
) -> None:
    assert blocks(replace(event, is_cancelled=True), rules=rules) == ()
    assert blocks(replace(event, response="declined"), rules=rules) == ()
