from m365pbx.core.mapping import (
    DEFAULT_RULES,
    Channel,
    CompiledMapping,
    apply_overlays,
    parse_mapping_overlay,
)
from m365pbx.core.policy import (
    CalendarBlock,
    LineReading,
    PersonState,
    PolicyConfig,
    TeamsReading,
    decide,
    observe_line,
    observe_teams,
    set_calendar,
)
from m365pbx.core.presence import Activity, Availability, LineState, PbxPresence, TeamsPresence
from tests.core.policy_world import AVAILABLE, DEFAULT_CONFIG, IN_A_CALL, World

BUSY = TeamsPresence(Availability.BUSY, Activity.BUSY)
DND = TeamsPresence(Availability.DO_NOT_DISTURB, Activity.DO_NOT_DISTURB)
AWAY = TeamsPresence(Availability.AWAY, Activity.AWAY)


def test_teams_busy_reaches_the_pbx() -> None:
    world = World()
    world.deliver_teams()
    world.settle()
    world.person_sets_teams(BUSY)
    assert world.pbx_shown is PbxPresence.BUSY


def test_a_call_shows_in_a_call_and_disappears_when_it_ends() -> None:
    world = World()
    world.phone(LineState.ON_THE_PHONE)
    assert world.teams_shows() == IN_A_CALL
    assert world.writes == ["setPresence Busy/InACall"]
    world.phone(LineState.IDLE)
    assert world.our_session is not None  # held down for a moment, not cleared at once
    world.advance(DEFAULT_CONFIG.call_end_hold_down + 0.1)
    assert world.our_session is None
    assert world.teams_shows() == AVAILABLE
    assert world.writes == ["setPresence Busy/InACall", "clearPresence"]


def test_our_in_a_call_never_bounces_back_to_the_pbx_or_into_preferred_presence() -> None:
    world = World()
    world.phone(LineState.ON_THE_PHONE)
    world.advance(3600)
    assert not any(w.startswith(("pbx", "setUserPreferred")) for w in world.writes)
    assert world.pbx_shown is PbxPresence.ONLINE


def test_a_three_hour_call_keeps_its_session_refreshed() -> None:
    world = World()
    world.phone(LineState.ON_THE_PHONE)
    for _ in range(36):
        world.advance(300)
        assert world.teams_shows() == IN_A_CALL
    refreshes = [w for w in world.writes if w.startswith("setPresence")]
    # 15-minute sessions refreshed one minute before they lapse: about 13 writes in 3 h.
    assert 12 <= len(refreshes) <= 15


def test_transfer_within_the_hold_down_does_not_flap_teams() -> None:
    world = World()
    world.phone(LineState.ON_THE_PHONE)
    world.phone(LineState.IDLE)
    world.advance(0.4)
    world.phone(LineState.ON_THE_PHONE)
    world.advance(10)
    assert world.writes == ["setPresence Busy/InACall"]


def test_held_call_is_still_a_call_and_ringing_is_not_sent() -> None:
    world = World()
    world.phone(LineState.RINGING)
    assert world.writes == []
    world.phone(LineState.ON_THE_PHONE)
    world.phone(LineState.HELD)
    assert world.writes == ["setPresence Busy/InACall"]


def test_ringing_can_be_sent_when_the_mapping_says_so() -> None:
    overlay = parse_mapping_overlay(
        {"pbx_to_teams": [{"line_state": "ringing", "session": "Busy/InACall"}]}
    )
    config = PolicyConfig(mapping=CompiledMapping(apply_overlays(DEFAULT_RULES, overlay)))
    world = World(config=config)
    world.phone(LineState.RINGING)
    assert world.writes == ["setPresence Busy/InACall"]


def test_pbx_dnd_sets_preferred_presence_and_clearing_it_clears_ours() -> None:
    world = World()
    world.pbx_person_sets(PbxPresence.DND)
    assert world.teams_shows() == DND
    assert world.preferred_expires == world.now + 86400
    world.advance(5)
    world.pbx_person_sets(PbxPresence.ONLINE)
    assert world.preferred is None
    assert world.teams_shows() == AVAILABLE
    assert world.writes == [
        "setUserPreferredPresence DoNotDisturb/DoNotDisturb",
        "clearUserPreferredPresence",
    ]


def test_pbx_away_lasts_seven_days() -> None:
    world = World()
    world.pbx_person_sets(PbxPresence.AWAY)
    assert world.preferred_expires == world.now + 7 * 86400


def test_manual_dnd_in_teams_is_left_alone() -> None:
    world = World()
    world.person_sets_teams(DND)
    world.advance(200)
    world.pbx_person_sets(PbxPresence.AWAY)
    world.phone(LineState.ON_THE_PHONE)
    world.phone(LineState.IDLE)
    world.pbx_person_sets(PbxPresence.ONLINE)
    world.advance(60)
    assert world.preferred == DND and world.preferred_by == "person"
    assert not world.person_preferred_overwritten
    assert world.teams_shows() == DND


def test_a_choice_made_in_teams_after_ours_stands_until_the_person_clears_it() -> None:
    world = World()
    world.pbx_person_sets(PbxPresence.AWAY)
    world.advance(200)
    world.person_sets_teams(BUSY)
    world.advance(200)
    assert world.teams_shows() == BUSY
    assert world.writes.count("setUserPreferredPresence Away/Away") == 1
    world.pbx_person_sets(PbxPresence.ONLINE)  # not ours any more: nothing to clear
    assert world.preferred == BUSY
    world.pbx_person_sets(PbxPresence.DND)
    assert world.teams_shows() == BUSY  # their hand, still
    world.person_sets_teams(None)  # they reset their status in Teams
    assert world.teams_shows() == DND  # the PBX presence that is still set now shows


def test_pbx_wins_writes_over_the_persons_choice() -> None:
    world = World(config=PolicyConfig(mapping=DEFAULT_CONFIG.mapping, respect_manual_teams=False))
    world.person_sets_teams(BE_RIGHT_BACK := TeamsPresence(Availability.BE_RIGHT_BACK,
                                                           Activity.BE_RIGHT_BACK))
    assert world.teams_shows() == BE_RIGHT_BACK
    world.pbx_person_sets(PbxPresence.DND)
    assert world.teams_shows() == DND


def test_only_replace_available_busy_leaves_away_alone() -> None:
    config = PolicyConfig(mapping=DEFAULT_CONFIG.mapping, only_replace_available_busy=True)
    world = World(config=config)
    world.client = AWAY
    world.deliver_teams()
    world.settle()
    world.phone(LineState.ON_THE_PHONE)
    assert not any(w.startswith("setPresence") for w in world.writes)
    world.client = AVAILABLE
    world.deliver_teams()
    world.settle()
    world.phone(LineState.HELD)
    assert world.writes[-1] == "setPresence Busy/InACall"


def test_push_line_state_switch_off_writes_nothing_to_teams() -> None:
    world = World(config=PolicyConfig(mapping=DEFAULT_CONFIG.mapping, push_line_state=False))
    world.phone(LineState.ON_THE_PHONE)
    assert world.writes == []


def test_calendar_meeting_shows_on_time_with_its_subject() -> None:
    state = PersonState()
    start = 2_000_000.0
    state = set_calendar(state, (CalendarBlock(PbxPresence.MEETING, start, start + 1800, "Board"),))
    before = decide(state, start - 60, DEFAULT_CONFIG)
    assert before.pbx is None and before.wake_at == start
    during = decide(state, start, DEFAULT_CONFIG)
    assert during.pbx is not None
    assert (during.pbx.presence, during.pbx.note) == (PbxPresence.MEETING, "Board")
    assert during.wake_at == start + 1800


def test_on_the_phone_beats_a_meeting_in_the_calendar() -> None:
    state = PersonState()
    state, _ = observe_teams(state, TeamsReading(IN_A_CALL, 10.0, "1"), 10.0, DEFAULT_CONFIG)
    state = set_calendar(state, (CalendarBlock(PbxPresence.MEETING, 0.0, 100.0, "Standup"),))
    plan = decide(state, 10.0, DEFAULT_CONFIG)
    assert plan.pbx is not None and plan.pbx.presence is PbxPresence.ON_THE_PHONE


def test_stale_teams_notification_is_rejected_by_sequence_number() -> None:
    state = PersonState()
    state, accepted = observe_teams(state, TeamsReading(BUSY, 10.0, "0002"), 10, DEFAULT_CONFIG)
    assert accepted
    state, accepted = observe_teams(state, TeamsReading(AWAY, 11.0, "0001"), 11, DEFAULT_CONFIG)
    assert not accepted
    assert state.teams is not None and state.teams.presence == BUSY


def test_stale_line_event_is_rejected_by_time_when_there_is_no_sequence() -> None:
    state = PersonState()
    state, _ = observe_line(state, LineReading(LineState.IDLE, 20.0))
    state, accepted = observe_line(state, LineReading(LineState.ON_THE_PHONE, 19.0))
    assert not accepted
    assert state.line is not None and state.line.state is LineState.IDLE


def test_pbx_hold_down_limits_flapping_to_one_write_per_interval() -> None:
    config = PolicyConfig(mapping=DEFAULT_CONFIG.mapping, pbx_hold_down=30.0)
    world = World(config=config)
    world.deliver_teams()
    world.settle()
    for presence in (BUSY, AWAY, BUSY, AWAY, DND):
        world.person_sets_teams(presence)
        world.now += 1
    assert [w for w in world.writes if w.startswith("pbx")] == ["pbx busy"]
    world.advance(60)
    assert world.pbx_shown is PbxPresence.DND
    assert [w for w in world.writes if w.startswith("pbx")] == ["pbx busy", "pbx dnd"]


def test_session_channel_enum_is_used_for_calls() -> None:
    plan = decide(
        observe_line(PersonState(), LineReading(LineState.ON_THE_PHONE, 5.0))[0], 5.0,
        DEFAULT_CONFIG,
    )
    assert plan.session is not None and plan.session.channel is Channel.SESSION
    assert plan.session.lifetime == 900.0
