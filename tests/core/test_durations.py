from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from m365pbx.core.durations import iso_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT5M", timedelta(minutes=5)),
        ("pt4h", timedelta(hours=4)),
        ("P7D", timedelta(days=7)),
        ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
        ("PT0.5S", timedelta(seconds=0.5)),
        ("90s", timedelta(seconds=90)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("7d", timedelta(days=7)),
        ("250ms", timedelta(milliseconds=250)),
        (" 5 m ", timedelta(minutes=5)),
    ],
)
def test_iso_and_human_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "P", "PT", "5", "soon", "5x", "1h and 5m", "P1Y"])
def test_garbage_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=400 * 86400))
def test_iso_duration_round_trips(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(iso_duration(value)) == value


def test_graph_style_output() -> None:
    assert iso_duration(timedelta(minutes=15)) == "PT15M"
    assert iso_duration(timedelta(days=7)) == "P7D"
    assert iso_duration(timedelta(hours=1, minutes=30)) == "PT1H30M"
