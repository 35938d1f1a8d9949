"""Durations: ISO 8601 and human forms, with errors that say what is accepted."""

from __future__ import annotations

from datetime import timedelta

import pytest

from m365pbx.config import format_duration, parse_duration
from tests.config.conftest import Load, Problems, valid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT5M", timedelta(minutes=5)),
        ("P7D", timedelta(days=7)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("7d", timedelta(days=7)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        (" 2H ", timedelta(hours=2)),
    ],
)
def test_accepted_forms(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("300", "300 has no unit; write '300s'"),
        (300, "300 has no unit"),
        ("P1M", "years and months have no fixed length"),
        ("P1Y", "years and months have no fixed length"),
        ("0s", "must be longer than zero"),
        ("PT0S", "must be longer than zero"),
        ("soon", "is not a duration; use ISO-8601"),
        ("5 parsecs", "is not a duration"),
        (True, "expected a duration"),
        (None, "expected a duration"),
    ],
)
def test_refused_forms_say_why(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(hours=1), "1h"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(days=7), "7d"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(milliseconds=500), "0.5s"),
    ],
)
def test_format_round_trips(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


def test_duration_in_the_file_and_its_error(load: Load, problems: Problems) -> None:
    config = valid()
    config["tenants"][0]["directory"] = {"full_sync_interval": "P1D"}
    assert load(config).tenants[0].directory.full_sync_interval == timedelta(days=1)
    config["tenants"][0]["directory"] = {"full_sync_interval": 3600}
    problem = problems(config).problems[0]
    assert problem.path == "tenants[0].directory.full_sync_interval"
    assert "3600 has no unit; write '3600s'" in problem.message
