"""The PBX note as the Teams status message: written where enabled, never over the person's."""

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m365pbx.core.policy import STATUS_MESSAGE_MAX, PolicyConfig, decide, status_text
from m365pbx.core.presence import LineState, PbxPresence
from m365pbx.sync.pbx_to_teams.snapshot import (
    merge,
    snapshot_from_values,
    snapshot_of,
    teams_written_values,
)
from tests.core.policy_world import DEFAULT_CONFIG, World

NOTES = replace(DEFAULT_CONFIG, push_pbx_note=True)
DAY = 86400.0


def _world(config: PolicyConfig = NOTES) -> World:
    world = World(config=config)
    world.deliver_teams()
    world.settle()
    return world


def _status_writes(world: World) -> list[str]:
    return [w for w in world.writes if w.startswith("setStatusMessage")]


def test_the_note_stays_in_the_pbx_unless_enabled() -> None:
    world = _world(DEFAULT_CONFIG)
    world.pbx_person_sets(PbxPresence.AWAY, "At lunch until 2")
    assert _status_writes(world) == []
    assert world.teams_message() == ""


def test_the_pbx_note_becomes_the_status_message_with_the_presence_lifetime() -> None:
    world = _world()
    world.pbx_person_sets(PbxPresence.AWAY, "At lunch until 2")
    assert world.teams_message() == "At lunch until 2"
    # mapping.md: away lasts 7 days, and the note as long as its presence.
    assert world.message_expires == world.now + 7 * DAY
    world.pbx_person_sets(PbxPresence.ONLINE, "")
    assert world.teams_message() == ""
    assert _status_writes(world) == ["setStatusMessage 'At lunch until 2'",
                                     "setStatusMessage ''"]


def test_a_note_without_a_presence_lasts_the_configured_default() -> None:
    world = _world()
    world.pbx_person_sets(PbxPresence.ONLINE, "Working from the Berlin office")
    assert world.teams_message() == "Working from the Berlin office"
    assert world.message_expires == world.now + DAY


def test_the_persons_own_message_is_never_replaced_or_cleared() -> None:
    world = _world()
    world.person_sets_message("Parental leave until May")
    world.pbx_person_sets(PbxPresence.AWAY, "At lunch")
    world.pbx_person_sets(PbxPresence.ONLINE, "")
    assert world.teams_message() == "Parental leave until May"
    assert _status_writes(world) == []


def test_a_message_the_person_types_over_ours_stays_theirs() -> None:
    world = _world()
    world.pbx_person_sets(PbxPresence.AWAY, "At lunch")
    world.person_sets_message("Call my mobile")
    world.advance(3600)
    world.pbx_person_sets(PbxPresence.ONLINE, "")
    assert world.teams_message() == "Call my mobile"
    assert not world.person_message_overwritten
    assert _status_writes(world) == ["setStatusMessage 'At lunch'"]


def test_the_person_clearing_ours_is_respected_until_the_pbx_note_changes() -> None:
    world = _world()
    world.pbx_person_sets(PbxPresence.AWAY, "At lunch")
    world.advance(DEFAULT_CONFIG.echo_window + 1)
    world.person_sets_message("")
    world.advance(3600)
    assert world.teams_message() == ""
    world.pbx_person_sets(PbxPresence.AWAY, "In the lab")
    assert world.teams_message() == "In the lab"


def test_an_old_echo_of_our_earlier_note_is_not_taken_for_the_persons() -> None:
    world = _world()
    world.pbx_person_sets(PbxPresence.AWAY, "At lunch")
    stale = world.state.teams
    world.pbx_person_sets(PbxPresence.AWAY, "Back at 2")
    assert world.teams_message() == "Back at 2"
    # A reading from between the two writes arrives late, with a newer sequence number
    # (as a poll answer or a delayed notification can): it still shows our first note.
    assert stale is not None
    world.state = replace(world.state, teams=replace(stale, status_message="At lunch"))
    world.state = replace(world.state,
                          status=replace(world.state.status, confirmed=True))  # type: ignore[arg-type]
    plan = decide(world.state, world.now, world.config)
    assert plan.status is None
    assert not world.state.status_overridden
    world.pbx_person_sets(PbxPresence.ONLINE, "")
    assert world.teams_message() == ""


def test_a_message_typed_since_the_last_reading_is_seen_before_writing() -> None:
    world = _world()
    world.pbx_person_sets(PbxPresence.AWAY, "At lunch")
    world.advance(60)
    world.person_sets_message("Parental leave", notified=False)
    world.pbx_person_sets(PbxPresence.BUSY, "Call my mobile")
    assert world.teams_message() == "Parental leave"
    assert _status_writes(world) == ["setStatusMessage 'At lunch'"]


def test_readings_without_the_message_do_not_count_as_cleared() -> None:
    world = _world()
    world.readings_carry_message = False
    world.pbx_person_sets(PbxPresence.AWAY, "At lunch")
    world.advance(3 * 3600)
    assert _status_writes(world) == ["setStatusMessage 'At lunch'"]
    world.pbx_person_sets(PbxPresence.ONLINE, "")
    assert world.teams_message() == ""


def test_a_long_note_is_refreshed_before_it_lapses() -> None:
    world = _world()
    world.pbx_person_sets(PbxPresence.DND, "Board meeting")
    world.advance(3 * DAY)
    assert world.teams_message() == "Board meeting"
    # dnd lasts 1 day: refreshed about once a day, not more.
    assert 3 <= len(_status_writes(world)) <= 5


def test_pbx_wins_writes_over_the_persons_message() -> None:
    world = _world(replace(NOTES, respect_manual_teams=False))
    world.person_sets_message("Gone fishing")
    world.pbx_person_sets(PbxPresence.AWAY, "At lunch")
    assert world.teams_message() == "At lunch"


def test_switching_notes_off_clears_only_our_message() -> None:
    world = _world()
    world.pbx_person_sets(PbxPresence.AWAY, "At lunch")
    world.config = DEFAULT_CONFIG
    world.advance(1)
    assert world.teams_message() == ""


def test_notes_are_made_fit_for_teams() -> None:
    assert status_text("  In the\nlab   today ") == "In the lab today"
    assert status_text("Do not disturb") == status_text(" away ") == ""  # phones' defaults
    long = status_text("x" * 400)
    assert len(long) == STATUS_MESSAGE_MAX and long.endswith("…")


def test_our_message_survives_a_restart() -> None:
    world = _world()
    world.pbx_person_sets(PbxPresence.AWAY, "At lunch")
    saved = snapshot_from_values(None, None, None, teams_written_values(
        snapshot_of(world.state, world.now)))
    restored = World(config=NOTES, now=world.now, message=world.message, message_by="us",
                     message_expires=world.message_expires)
    restored.state = merge(restored.state, saved)
    restored.pbx_person_sets(PbxPresence.ONLINE, "")
    assert restored.teams_message() == ""


NOTE_ACTIONS = st.one_of(
    st.tuples(st.just("message"), st.sampled_from(["", "Gone fishing", "Call my mobile"])),
    # Typed in Teams, and no notification has told us yet.
    st.tuples(st.just("silent"), st.sampled_from(["", "Gone fishing"])),
    st.tuples(st.just("pbx"), st.tuples(st.sampled_from(list(PbxPresence)),
                                        st.sampled_from(["", "At lunch", "In the lab"]))),
    st.tuples(st.just("phone"), st.sampled_from(list(LineState))),
    st.tuples(st.just("wait"), st.floats(min_value=0.1, max_value=DAY)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(NOTE_ACTIONS, min_size=1, max_size=25), st.booleans())
def test_no_loop_and_the_persons_message_is_never_overwritten(actions: list,
                                                               carry: bool) -> None:
    world = _world()
    world.readings_carry_message = carry
    for kind, value in actions:
        if kind == "message":
            world.person_sets_message(value)
        elif kind == "silent":
            # Graph has no conditional write for the status message: a message typed within
            # `status_read_fresh` of our read can be lost. Outside that window, never.
            fresh = world.config.status_read_fresh
            for _ in range(5):
                world.advance(fresh + 0.1)
                read_at = world.state.teams_read_at
                if read_at is None or world.now > read_at + fresh:
                    break
            world.person_sets_message(value, notified=False)
        elif kind == "pbx":
            world.pbx_person_sets(*value)
        elif kind == "phone":
            world.phone(value)
        else:
            world.advance(value)
        assert not world.person_message_overwritten
        assert decide(world.state, world.now, world.config).empty
    if world.message_by == "us":
        assert world.message == status_text(world.pbx_person_note)
