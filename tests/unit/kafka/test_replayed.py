"""hookd.kafka.replayed: the ledger's markers, and a ledger that would forget a letter
before the dead-letter topic does."""

from __future__ import annotations

import pytest

from hookd.kafka.replayed import Moved, ledger_topic, read_marker, shorter_lived


def test_a_marker_reads_back_as_the_letter_it_names() -> None:
    moved = Moved(3, 41, "crm", "ev-1")
    key, value = moved.marker("hookd.retry.5s", 1.5)
    assert key == b"3/41" and read_marker(value) == moved
    assert moved.replay_of("hookd.dlq") == b"hookd.dlq/3/41"
    assert ledger_topic("hookd.dlq") == "hookd.dlq.replayed"


WEEK, MONTH = "604800000", "2592000000"


@pytest.mark.parametrize(("ledger", "letters", "problem"), [
    ({"retention.ms": MONTH}, {"retention.ms": MONTH}, None),
    ({"retention.ms": "-1"}, {"retention.ms": WEEK}, None),
    ({"retention.ms": MONTH}, {"retention.ms": WEEK}, None),
    ({"retention.ms": WEEK}, {"retention.ms": MONTH}, "set its retention.ms to 2592000000"),
    ({"retention.ms": WEEK}, {"retention.ms": "-1"}, "keeps letters for ever"),
    ({"cleanup.policy": "compact", "retention.ms": "-1"}, {}, "is compacted"),
    ({}, {}, None),  # the broker did not say
])
def test_a_ledger_that_forgets_before_the_dead_letters_is_named(
        ledger: dict[str, str], letters: dict[str, str], problem: str | None) -> None:
    said = shorter_lived(ledger, letters, "hookd.dlq.replayed", "hookd.dlq")
    assert said is None if problem is None else problem in (said or "")
