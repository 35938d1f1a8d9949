"""The aggregation rules of graph.md 3.9 as pure functions of the inputs and `now`."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from m365sim.presence.model import (
    AppSession,
    Preferred,
    StatusMessage,
    UserPresence,
    aggregate_state,
    app_session_state,
    evaluate,
)
from m365sim.presence.states import (
    AVAILABLE,
    AWAY,
    CLIENT_STATES,
    PREFERRED_STATES,
    SET_PRESENCE_STATES,
    client_state,
    preferred_state,
    rank,
    set_presence_state,
)
from m365sim.presence.timefmt import (
    US_PER_MINUTE,
    graph_instant,
    parse_date_time_zone,
    parse_duration_us,
    to_us,
)

T0 = 1_767_600_000_000_000  # an instant in µs
MIN = US_PER_MINUTE


def session(state: tuple[str, str], *, at: int = T0, lifetime: int = 60 * MIN,
            app: str = "app-1") -> AppSession:
    return AppSession(app, state, at, at + lifetime, at)


def test_no_session_reads_offline_even_with_a_preferred_presence() -> None:
    presence = UserPresence("u", preferred=Preferred(("Busy", "Busy"), T0, T0 + MIN * 60, "x"))
    assert aggregate_state(presence, T0) == ("Offline", "Offline")


def test_preferred_presence_beats_every_session() -> None:
    presence = UserPresence("u", clients={"desktop": ("DoNotDisturb", "Presenting")},
                            preferred=Preferred(("Away", "Away"), T0, T0 + 60 * MIN, "x"))
    assert aggregate_state(presence, T0) == ("Away", "Away")


def test_documented_session_order_dnd_busy_available_away() -> None:
    order = [("DoNotDisturb", "Presenting"), ("Busy", "InACall"), AVAILABLE, AWAY]
    for better, worse in itertools.pairwise(order):
        presence = UserPresence("u", clients={"desktop": worse},
                                apps={"a": session(better, app="a")})
        assert aggregate_state(presence, T0) == better
        presence = UserPresence("u", clients={"desktop": better},
                                apps={"a": session(worse, app="a")})
        assert aggregate_state(presence, T0) == better


def test_chosen_ranks_for_what_the_docs_leave_open() -> None:
    assert rank(("BeRightBack", "BeRightBack")) < rank(("Available", "AvailableInactive"))
    assert rank(("Available", "AvailableInactive")) < rank(AVAILABLE)
    assert rank(AWAY) < rank(("BeRightBack", "BeRightBack"))
    assert rank(("Busy", "InAMeeting")) < rank(("Busy", "InACall"))
    assert rank(("Busy", "InACall")) < rank(("Busy", "InAConferenceCall"))
    assert rank(("Busy", "InAConferenceCall")) < rank(("DoNotDisturb", "DoNotDisturb"))
    assert rank(("DoNotDisturb", "DoNotDisturb")) < rank(("DoNotDisturb", "Presenting"))


def test_available_app_session_fades_at_5_and_10_minutes_without_refresh() -> None:
    available = session(AVAILABLE)
    assert app_session_state(available, T0 + 5 * MIN - 1) == AVAILABLE
    assert app_session_state(available, T0 + 5 * MIN) == ("Available", "AvailableInactive")
    assert app_session_state(available, T0 + 10 * MIN - 1) == ("Available", "AvailableInactive")
    assert app_session_state(available, T0 + 10 * MIN) == AWAY


def test_only_available_sessions_fade() -> None:
    busy = session(("Busy", "InACall"))
    assert app_session_state(busy, T0 + 200 * MIN) == ("Busy", "InACall")


def test_expired_session_stops_counting_and_takes_the_preferred_presence_with_it() -> None:
    presence = UserPresence("u", apps={"a": session(("Busy", "InACall"), lifetime=5 * MIN)},
                            preferred=Preferred(("Busy", "Busy"), T0, T0 + 600 * MIN, "x"))
    view, next_change = evaluate(presence, T0 + 5 * MIN - 1)
    assert (view.availability, view.activity) == ("Busy", "Busy")
    assert next_change == T0 + 5 * MIN
    view, next_change = evaluate(presence, T0 + 5 * MIN)
    assert (view.availability, view.activity) == ("Offline", "Offline")
    assert presence.apps == {}
    assert next_change == T0 + 600 * MIN  # the preferred presence keeps its own clock


def test_next_change_names_the_fade_deadlines_of_an_available_session() -> None:
    presence = UserPresence("u", apps={"a": session(AVAILABLE, lifetime=60 * MIN)})
    assert evaluate(presence, T0)[1] == T0 + 5 * MIN
    assert evaluate(presence, T0 + 5 * MIN)[1] == T0 + 10 * MIN
    assert evaluate(presence, T0 + 10 * MIN)[1] == T0 + 60 * MIN


def test_status_message_expires_and_is_part_of_the_view() -> None:
    presence = UserPresence("u", clients={"desktop": AVAILABLE},
                            status=StatusMessage("Lunch", T0, T0 + MIN, "x"))
    assert evaluate(presence, T0)[0].status_message == "Lunch"
    assert evaluate(presence, T0 + MIN)[0].status_message is None


def test_calendar_meeting_ranks_as_a_busy_session_but_needs_a_session() -> None:
    presence = UserPresence("u", clients={"desktop": AVAILABLE}, calendar="InAMeeting")
    assert aggregate_state(presence, T0) == ("Busy", "InAMeeting")
    presence.clients["desktop"] = ("Busy", "InACall")
    assert aggregate_state(presence, T0) == ("Busy", "InACall")
    presence.clients.clear()
    assert aggregate_state(presence, T0) == ("Offline", "Offline")


def test_out_of_office_shows_as_available_out_of_office_and_keeps_calls() -> None:
    presence = UserPresence("u", clients={"desktop": AVAILABLE}, calendar="OutOfOffice")
    view, _ = evaluate(presence, T0)
    assert (view.availability, view.activity, view.out_of_office) == (
        "Available", "OutOfOffice", True)
    presence.clients["desktop"] = ("Busy", "InACall")
    view, _ = evaluate(presence, T0)
    assert (view.availability, view.activity, view.out_of_office) == ("Busy", "InACall", True)
    presence.clients.clear()
    assert aggregate_state(presence, T0) == ("Offline", "OutOfOffice")


def test_accepted_combinations_match_the_docs_case_insensitively() -> None:
    assert len(SET_PRESENCE_STATES) == 5 and len(PREFERRED_STATES) == 6
    assert set_presence_state("doNotDisturb", "presenting") == ("DoNotDisturb", "Presenting")
    assert set_presence_state("DoNotDisturb", "DoNotDisturb") is None
    assert set_presence_state("Available", "OutOfOffice") is None
    assert set_presence_state("Busy", "InAMeeting") is None
    assert preferred_state("offline", "offwork") == ("Offline", "OffWork")
    assert preferred_state("Busy", "InACall") is None
    assert client_state("Busy", "InAMeeting") == ("Busy", "InAMeeting")
    assert client_state("Offline", "OffWork") is None


def test_iso_durations_and_graph_date_times() -> None:
    assert parse_duration_us("PT5M") == 5 * MIN
    assert parse_duration_us("PT4H") == 240 * MIN
    assert parse_duration_us("P1DT30M") == (24 * 60 + 30) * MIN
    assert parse_duration_us("PT0.5S") == 500_000
    for bad in ("", "P", "PT", "5M", "PT5", "P1M", "-PT5M", "PT5M ", "P1DT"):
        assert parse_duration_us(bad) is None, bad
    pacific = parse_date_time_zone("2026-01-05T09:00:00.0000000", "Pacific Standard Time")
    assert pacific is not None and graph_instant(pacific) == "2026-01-05T17:00:00.0000000Z"
    assert parse_date_time_zone("2026-01-05T09:00:00", "Europe/Berlin") is not None
    assert parse_date_time_zone("2026-01-05T09:00:00", "Mars Standard Time") is None
    assert parse_date_time_zone("next tuesday", "UTC") is None
    assert parse_date_time_zone("2026-01-05T09:00:00Z", "UTC") is not None


pairs = st.sampled_from(sorted(CLIENT_STATES | SET_PRESENCE_STATES))


@given(clients=st.lists(pairs, max_size=3), apps=st.lists(pairs, max_size=3),
       preferred=st.one_of(st.none(), st.sampled_from(sorted(PREFERRED_STATES))),
       minutes=st.integers(min_value=0, max_value=300))
def test_aggregate_is_one_of_its_inputs_or_offline(
    clients: list[tuple[str, str]], apps: list[tuple[str, str]],
    preferred: tuple[str, str] | None, minutes: int,
) -> None:
    presence = UserPresence(
        "u", clients={f"c{i}": s for i, s in enumerate(clients)},
        apps={f"a{i}": session(s, app=f"a{i}", lifetime=240 * MIN) for i, s in enumerate(apps)},
        preferred=None if preferred is None else Preferred(preferred, T0, T0 + 10**12, "x"))
    now = T0 + minutes * MIN
    view, _ = evaluate(presence, now)
    result = (view.availability, view.activity)
    live = list(presence.clients.values()) + [app_session_state(s, now)
                                              for s in presence.apps.values()]
    if not live:
        assert result == ("Offline", "Offline")
    elif preferred is not None:
        assert result == preferred
    else:
        assert result in live and all(rank(result) >= rank(other) for other in live)


def test_microsecond_conversion_is_exact() -> None:
    from datetime import UTC, datetime

    when = datetime(2026, 1, 5, 8, 0, 0, 123456, tzinfo=UTC)
    assert to_us(when) % 1_000_000 == 123456
