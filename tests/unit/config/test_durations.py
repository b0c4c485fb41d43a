"""Durations as operators write them."""

from __future__ import annotations

import pytest

from hookd.config.durations import format_duration, parse_duration
from hookd.errors import SpecError


@pytest.mark.parametrize(("text", "seconds"), [
    pytest.param("250ms", 0.25, id="milliseconds"),
    pytest.param("5s", 5.0, id="seconds"),
    pytest.param("5m", 300.0, id="minutes"),
    pytest.param("2h", 7200.0, id="hours"),
    pytest.param("1d", 86400.0, id="days"),
    pytest.param("1h30m", 5400.0, id="compound"),
    pytest.param("1m500ms", 60.5, id="compound-with-ms"),
    pytest.param("1.5s", 1.5, id="fraction"),
    pytest.param("0s", 0.0, id="zero"),
    pytest.param("  10s ", 10.0, id="surrounding-spaces"),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [
    pytest.param("5", id="no-unit"),
    pytest.param("5 s", id="space-inside"),
    pytest.param("5sec", id="long-unit"),
    pytest.param("-5s", id="negative"),
    pytest.param("5w", id="unknown-unit"),
    pytest.param("", id="empty"),
    pytest.param("s", id="unit-only"),
    pytest.param("1h 30m", id="spaced-compound"),
    pytest.param("5S", id="upper-case"),
])
def test_parse_duration_rejects_text(text: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_duration(text)
    assert caught.value.message == (
        f"invalid duration {text!r} (use a number and a unit: ms, s, m, h, d)")


@pytest.mark.parametrize("value", [
    pytest.param(5, id="int"), pytest.param(1.5, id="float"), pytest.param(True, id="bool"),
    pytest.param(None, id="null"), pytest.param(["5s"], id="list"),
])
def test_parse_duration_rejects_non_strings(value: object) -> None:
    with pytest.raises(SpecError) as caught:
        parse_duration(value)
    assert caught.value.message == (
        f"expected a duration such as '250ms', '5s', '2h', got {value!r}")


@pytest.mark.parametrize(("seconds", "text"), [
    pytest.param(0.25, "250ms", id="ms"),
    pytest.param(5.0, "5s", id="s"),
    pytest.param(90.0, "90s", id="not-whole-minutes"),
    pytest.param(300.0, "5m", id="m"),
    pytest.param(7200.0, "2h", id="h"),
    pytest.param(172800.0, "2d", id="d"),
    pytest.param(1.5, "1500ms", id="fraction-of-second"),
])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)
