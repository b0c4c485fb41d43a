"""hookd.cli.selection: which dead letters `hookd replay` selects, and how its options read."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import orjson
import pytest

from hookd.cli.selection import Facts, Selection, facts_of, parse_statuses, parse_time
from hookd.delivery.retries import ErrorKind
from hookd.kafka.deadletter import DeadLetter, Source


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


NOW = at("2026-12-07T16:00:00")
# (hook, event_id, kind, status, last attempt)
CRM_503 = Facts("crm", "e1", "http_status", 503, at("2026-12-07T14:30:00"))
CRM_404 = Facts("crm", "e2", "http_status", 404, at("2026-12-07T14:45:00"))
CRM_TIMEOUT = Facts("crm", "e3", "timeout", None, at("2026-12-07T15:00:00"))
ERP_502 = Facts("erp", "e4", "http_status", 502, at("2026-12-07T15:30:00"))
DECODE = Facts(None, None, "decode", None, at("2026-12-07T13:00:00"))
NEVER = Facts("crm", "e5", "circuit_open", None, None)  # no time at all
ALL = [CRM_503, CRM_404, CRM_TIMEOUT, ERP_502, DECODE, NEVER]


def options(*argv: str) -> Selection:
    parser = argparse.ArgumentParser()
    for name in ("--hook", "--error-kind", "--status", "--event-id"):
        parser.add_argument(name, action="append")
    parser.add_argument("--since")
    parser.add_argument("--until")
    return Selection.from_args(parser.parse_args(argv), now=NOW)


@pytest.mark.parametrize(("argv", "selected"), [
    ((), ALL),
    (("--hook", "crm"), [CRM_503, CRM_404, CRM_TIMEOUT, NEVER]),
    (("--hook", "crm", "--hook", "erp"), [CRM_503, CRM_404, CRM_TIMEOUT, ERP_502, NEVER]),
    (("--error-kind", "timeout,decode"), [CRM_TIMEOUT, DECODE]),
    (("--error-kind", "HTTP_STATUS", "--error-kind", "timeout"),
     [CRM_503, CRM_404, CRM_TIMEOUT, ERP_502]),
    (("--status", "503"), [CRM_503]),
    (("--status", "5xx"), [CRM_503, ERP_502]),
    (("--status", "404,502"), [CRM_404, ERP_502]),
    (("--status", "5xx", "--hook", "crm"), [CRM_503]),
    (("--event-id", "e2", "--event-id", "e4"), [CRM_404, ERP_502]),
    # since inclusive, until exclusive: 14:30 is in, 15:00 is out
    (("--since", "2026-12-07T14:30", "--until", "2026-12-07T15:00"), [CRM_503, CRM_404]),
    (("--since", "2026-12-07T15:00:00Z"), [CRM_TIMEOUT, ERP_502]),
    (("--since", "2026-12-07T16:00+01:00"), [CRM_TIMEOUT, ERP_502]),  # 15:00 UTC
    (("--until", "2026-12-07"), []),  # a date: its midnight, UTC
    (("--since", "1h"), [CRM_TIMEOUT, ERP_502]),  # NOW is 16:00: since 15:00
    (("--since", "90m", "--until", "30m"), [CRM_503, CRM_404, CRM_TIMEOUT]),
    (("--since", "3h", "--hook", "crm", "--status", "4xx"), [CRM_404]),
])
def test_a_letter_is_selected_when_it_matches_every_option(argv: tuple[str, ...],
                                                           selected: list[Facts]) -> None:
    selection = options(*argv)
    assert [f for f in ALL if selection.matches(f)] == selected


@pytest.mark.parametrize(("argv", "message"), [
    (("--status", "600"), "not an HTTP status"),
    (("--status", "50x"), "not an HTTP status"),
    (("--status", "6xx"), "not an HTTP status"),
    (("--error-kind", "http"), "unknown error kind 'http' (one of http_status, timeout"),
    (("--since", "yesterday"), "neither an ISO-8601 time"),
    (("--since", "2026-12-07T15:00", "--until", "2026-12-07T14:00"), "is not before"),
])
def test_a_wrong_option_says_what_is_wrong(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        options(*argv)


def test_times_read_as_operators_write_them() -> None:
    assert parse_time("2026-12-07T14:00", NOW) == at("2026-12-07T14:00:00")
    assert parse_time("2026-12-07 14:00:00Z", NOW) == at("2026-12-07T14:00:00")
    assert parse_time("2h", NOW) == NOW - 7200
    assert parse_time("1h30m", NOW) == NOW - 5400
    assert parse_statuses(["503, 5xx", "429"]) == (frozenset({503, 429}), frozenset({5}))


def test_the_facts_of_a_letter_as_hookd_writes_it() -> None:
    letter = DeadLetter("crm", "ev-1", "Answered", {}, None, ErrorKind.HTTP_STATUS, 503, "",
                        3, 1.0, at("2026-12-07T14:30:00"), Source("cc.events", 0, 1))
    facts = facts_of(orjson.loads(letter.to_json()), written_ms=0)
    assert facts == Facts("crm", "ev-1", "http_status", 503,
                                      at("2026-12-07T14:30:00"))
    # never attempted: the time it was written (the record's timestamp)
    unsent = DeadLetter("crm", "ev-1", "Answered", {}, None, ErrorKind.CIRCUIT_OPEN, None, "",
                        0, None, None, Source("cc.events", 0, 1))
    assert facts_of(orjson.loads(unsent.to_json()), written_ms=5_000).at == 5.0
