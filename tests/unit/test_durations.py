"""ISO 8601 durations for retention (P1, P2, L4)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotdesk.domain.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT30M", timedelta(minutes=30)),
        ("PT4H", timedelta(hours=4)),
        ("P1D", timedelta(days=1)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("P2W", timedelta(weeks=2)),
        ("P1W2DT3H4M5S", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        ("PT0S", timedelta(0)),
        ("P0D", timedelta(0)),
        ("PT90S", timedelta(seconds=90)),
        ("PT1.5H", timedelta(minutes=90)),
        ("PT0,5S", timedelta(milliseconds=500)),
        ("PT0.000001S", timedelta(microseconds=1)),
        ("pt30m", timedelta(minutes=30)),  # case-insensitive
        ("  PT30M  ", timedelta(minutes=30)),  # surrounding blanks ignored
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "P",
        "PT",
        "P1DT",
        "30M",
        "30",
        "T30M",
        "P1Y",  # years: ambiguous length
        "P1M",  # months (M before T): ambiguous length
        "P1Y2M",
        "PT1H30",
        "PT30M1H",  # wrong order
        "-PT1M",
        "PT-1M",
        "P1.5.5D",
        "PT1HM",
        "PT 30M",
        "thirty minutes",
    ],
)
def test_parse_rejects_with_a_helpful_message(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    message = str(info.value)
    assert repr(text) in message
    assert "ISO 8601 duration" in message
    assert "PT30M" in message  # shows an example
    assert "years and months are not accepted" in message


@pytest.mark.parametrize("value", [None, 30, 1.5, b"PT30M", ["PT30M"]])
def test_parse_rejects_non_strings(value: object) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_duration(value)  # type: ignore[arg-type]


def test_parse_refuses_an_absurdly_long_duration_as_bad_input() -> None:
    """Out of range is bad input (ValueError), not an internal OverflowError."""
    with pytest.raises(ValueError, match="P9999999999D"):
        parse_duration("P9999999999D")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(0), "PT0S"),
        (timedelta(seconds=1), "PT1S"),
        (timedelta(minutes=30), "PT30M"),
        (timedelta(hours=1, minutes=30), "PT1H30M"),
        (timedelta(hours=4), "PT4H"),
        (timedelta(days=1), "P1D"),
        (timedelta(days=1, hours=2), "P1DT2H"),
        (timedelta(weeks=2), "P14D"),
        (timedelta(days=1, seconds=5), "P1DT5S"),
        (timedelta(milliseconds=1500), "PT1.5S"),
        (timedelta(hours=2, milliseconds=250), "PT2H0.25S"),
        (timedelta(microseconds=10), "PT0.00001S"),
        (timedelta(seconds=12, microseconds=345678), "PT12.345678S"),
    ],
)
def test_format(value: timedelta, expected: str) -> None:
    assert format_duration(value) == expected


def test_format_refuses_negative() -> None:
    with pytest.raises(ValueError, match="never negative"):
        format_duration(timedelta(seconds=-1))


durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3650))


@given(durations)
def test_format_then_parse_round_trips(value: timedelta) -> None:
    """What is stored (formatted) reads back as the same duration, to the microsecond."""
    text = format_duration(value)
    assert parse_duration(text) == value


@given(st.integers(min_value=0, max_value=10**8))
def test_whole_seconds_format_canonically(seconds: int) -> None:
    text = format_duration(timedelta(seconds=seconds))
    assert "." not in text and "e" not in text.lower()
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert format_duration(parse_duration(text)) == text
