"""A record's W3C trace context: the format checked, where it is read from and in which
order, what is dropped."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import pytest

from hookd.events import trace as trace_module
from hookd.events.decode import decode_event, make_meta
from hookd.events.trace import (
    TraceContext,
    checked_trace,
    trace_context,
    valid_traceparent,
    valid_tracestate,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
OTHER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
SPEC = ("ce_specversion", b"1.0")


@pytest.mark.parametrize(("value", "valid"), [
    (PARENT, True),
    (OTHER, True),  # not sampled: flags 00, still passed on
    ("01-" + TRACE_ID + "-00f067aa0ba902b7-01-what-comes-later", True),  # a later version
    ("cc-" + TRACE_ID + "-00f067aa0ba902b7-09", True),
    ("ff-" + TRACE_ID + "-00f067aa0ba902b7-01", False),  # version ff is invalid
    ("00-" + TRACE_ID + "-00f067aa0ba902b7-01-extra", False),  # 00 has four fields only
    ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", False),  # all-zero trace-id
    ("00-" + TRACE_ID + "-" + "0" * 16 + "-01", False),  # all-zero parent-id
    ("00-" + TRACE_ID.upper() + "-00f067aa0ba902b7-01", False),  # upper case hex
    ("00-" + TRACE_ID[:-1] + "-00f067aa0ba902b7-01", False),  # trace-id too short
    ("00-" + TRACE_ID + "-00f067aa0ba902b-01", False),  # parent-id too short
    ("00-" + TRACE_ID + "-00f067aa0ba902b7-1", False),  # flags one digit
    ("00-" + TRACE_ID + "-00f067aa0ba902b7-0g", False),
    (" " + PARENT, False),
    (PARENT + "\r\nx-evil: 1", False),  # never a header injection
    ("00_" + TRACE_ID + "_00f067aa0ba902b7_01", False),
    ("", False),
    ("00-abc-def-01", False),
    (None, False),
    (42, False),
])
def test_traceparent_format(value: object, valid: bool) -> None:
    assert valid_traceparent(value) is valid


@pytest.mark.parametrize(("value", "valid"), [
    ("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", True),
    ("rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE,", True),  # spaces and empty members
    ("tenant@vendor=value", True),
    ("", True),
    (",".join(f"k{i}=v" for i in range(32)), True),
    (",".join(f"k{i}=v" for i in range(33)), False),  # at most 32 members
    ("Rojo=1", False),  # keys are lower case
    ("rojo=a=b", False),
    ("rojo", False),
    ("rojo=1\r\nx-evil: 1", False),
    (None, False),
])
def test_tracestate_format(value: object, valid: bool) -> None:
    assert valid_tracestate(value) is valid


def decode(value: object, headers: Sequence[tuple[str, bytes]] | None = None
           ) -> TraceContext | None:
    meta = make_meta("cc.events", 0, 1, None, None, headers)
    return decode_event(orjson.dumps(value), meta).trace


def test_from_kafka_headers() -> None:
    got = decode({"event": "Answered"}, [("traceparent", PARENT.encode()),
                                         ("tracestate", b"rojo=1")])
    assert got == TraceContext(PARENT, "rojo=1")
    assert got.headers == (("traceparent", PARENT), ("tracestate", "rojo=1"))
    assert got.trace_id == TRACE_ID


def test_none_without_trace_headers() -> None:
    assert decode({"event": "Answered", "traceparent": PARENT}) is None  # a plain payload field
    assert decode({"event": "Answered"}, [("ce_traceparent", PARENT.encode())]) is None


def test_from_a_binary_cloudevent() -> None:
    got = decode({"n": 1}, [SPEC, ("ce_type", b"Answered"),
                            ("ce_traceparent", PARENT.encode()), ("ce_tracestate", b"a=b")])
    assert got == TraceContext(PARENT, "a=b")


def test_from_a_structured_cloudevent() -> None:
    value = {"specversion": "1.0", "type": "Answered", "id": "e1", "source": "/pbx",
             "traceparent": PARENT, "tracestate": "a=b", "data": {"n": 1}}
    assert decode(value) == TraceContext(PARENT, "a=b")


def test_the_record_header_wins_over_the_cloudevent_attribute() -> None:
    value = {"specversion": "1.0", "type": "Answered", "id": "e1", "traceparent": OTHER,
             "data": {}}
    assert decode(value, [("traceparent", PARENT.encode())]) == TraceContext(PARENT)
    binary = [SPEC, ("ce_type", b"Answered"), ("ce_traceparent", OTHER.encode()),
              ("traceparent", PARENT.encode())]
    assert decode({}, binary) == TraceContext(PARENT)


def test_an_invalid_header_falls_back_to_the_cloudevent_attribute() -> None:
    value = {"specversion": "1.0", "type": "Answered", "id": "e1", "traceparent": OTHER,
             "data": {}}
    assert decode(value, [("traceparent", b"garbage")]) == TraceContext(OTHER)


def test_invalid_ones_are_dropped_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    dropped = trace_module.Dropped()
    monkeypatch.setattr(trace_module, "DROPPED", dropped)
    assert decode({"event": "A"}, [("traceparent", b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01"),
                                   ("tracestate", b"rojo=1")]) is None
    assert decode({"event": "A"}, [("traceparent", PARENT.encode()),
                                   ("tracestate", b"not a state")]) == TraceContext(PARENT)
    structured = {"specversion": "1.0", "type": "A", "traceparent": 7, "data": {}}
    assert decode(structured) is None
    assert (dropped.traceparent, dropped.tracestate) == (2, 1)


def test_checked_trace_for_values_read_back() -> None:
    assert checked_trace(PARENT, None) == TraceContext(PARENT)
    assert checked_trace(PARENT, 5) == TraceContext(PARENT)
    assert checked_trace("x", "a=b") is None
    assert trace_context({}, True, {}) is None


def test_trace_context_made_once() -> None:
    """Its request headers and template variables are made with it; it compares and hashes
    by traceparent and tracestate alone, as the frozen dataclass it was did."""
    alone, with_state = TraceContext(PARENT), TraceContext(PARENT, "rojo=1")
    assert alone.headers == (("traceparent", PARENT),)
    assert alone.variables == {"traceparent": PARENT, "tracestate": ""}
    assert with_state.variables == {"traceparent": PARENT, "tracestate": "rojo=1"}
    assert {alone, TraceContext(PARENT), with_state} == {alone, with_state}
    assert repr(alone) == f"TraceContext(traceparent={PARENT!r}, tracestate=None)"
    assert alone.trace_id == TRACE_ID
