from __future__ import annotations

import pytest

from mlcicd.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1w", 604800),
        (" 1H ", 3600),
        ("2.5s", 2.5),
    ],
)
def test_durations_are_numbers_with_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "60", "1x", "h", "1h-", "soon", "2023-11-14T22:13:20Z"])
def test_anything_else_is_not_a_duration(text: str) -> None:
    assert parse_duration(text) is None


def test_formatting_reads_like_the_settings() -> None:
    assert [format_duration(s) for s in (300, 5400, 3600, 1, 0)] == [
        "5m",
        "1h30m",
        "1h",
        "1s",
        "0s",
    ]
