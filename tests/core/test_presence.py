from hypothesis import given
from hypothesis import strategies as st

from m365pbx.core.presence import (
    Activity,
    Availability,
    LineState,
    PbxPresence,
    TeamsPresence,
    UnknownValueFallback,
    UnknownValues,
    lookup_line_state,
    lookup_pbx_presence,
    parse_teams_presence,
)


def test_every_documented_value_parses_in_pascal_and_camel_case() -> None:
    for availability in Availability:
        for activity in Activity:
            camel_a = availability.value[0].lower() + availability.value[1:]
            camel_b = activity.value[0].lower() + activity.value[1:]
            assert parse_teams_presence(camel_a, camel_b) == TeamsPresence(availability, activity)


def test_innovaphone_spelling_offwork_is_understood() -> None:
    assert parse_teams_presence("Offline", "Offwork").activity is Activity.OFF_WORK


def test_unknown_values_take_the_fallback_and_are_counted() -> None:
    unknown = UnknownValues()
    fallback = UnknownValueFallback(Availability.BUSY, Activity.BUSY)
    presence = parse_teams_presence("Hyperfocus", "Daydreaming", fallback=fallback, unknown=unknown)
    assert presence == TeamsPresence(Availability.BUSY, Activity.BUSY)
    parse_teams_presence("Available", "Daydreaming", unknown=unknown)
    assert unknown.counts[("activity", "Daydreaming")] == 2
    assert unknown.counts[("availability", "Hyperfocus")] == 1
    assert unknown.total == 3


def test_missing_values_are_unknown_not_a_crash() -> None:
    unknown = UnknownValues()
    presence = parse_teams_presence(None, None, unknown=unknown)
    assert presence == TeamsPresence(Availability.PRESENCE_UNKNOWN, Activity.PRESENCE_UNKNOWN)
    assert unknown.total == 2


@given(st.text(max_size=40), st.text(max_size=40))
def test_parsing_never_raises_whatever_microsoft_sends(availability: str, activity: str) -> None:
    presence = parse_teams_presence(availability, activity)
    assert isinstance(presence.availability, Availability)
    assert isinstance(presence.activity, Activity)


def test_pbx_vocabulary_and_common_synonyms() -> None:
    assert lookup_pbx_presence("DND") is PbxPresence.DND
    assert lookup_pbx_presence("do-not-disturb") is PbxPresence.DND
    assert lookup_pbx_presence("On-The-Phone") is PbxPresence.ON_THE_PHONE
    assert lookup_pbx_presence("vacation") is None
    assert lookup_line_state("busy") is LineState.ON_THE_PHONE
    assert lookup_line_state("held") is LineState.HELD
