"""hookd.telemetry.lines: the delivered line, written from its parts, is the very bytes
structlog's chain (and `Lines.info` with the delivery's context) write."""

from __future__ import annotations

import re
import time
import types

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from hookd.telemetry import lines as written_by  # (its clock, fixed in a test)
from hookd.telemetry.lines import Lines, delivery_context
from hookd.telemetry.logs import REDACTOR, configure_logging
from hookd.telemetry.redact import Redactor
from tests.unit.telemetry.test_logs import (  # (restore_logging: each test's, here too)
    OTHER,
    SECRET,
    SECRETS,
    _same_as_the_chain,
    lines,
    restore_logging,  # noqa: F401
)

Parts = tuple[str, str, str, str, int, int, str]  # hook ... offset, the event's name
DELIVERED_CASES: list[Parts] = [
    ("crm", "msg_0f", "http://127.0.0.1/crm", "t", 1, 2, "Answered"),  # nothing to mask
    ("crm", "msg_1a", f"https://x.example/?t={SECRET}", "cc.events", 3, 17,
     "Answered"),  # a secret echoed
    ("crm", "msg_2b", "https://u:p@crm.example/", "t", 0, 0, f"Ans{OTHER}"),  # userinfo
    ('q"h\\', "msg_3c", "http://127.0.0.1/ü\n", "tö\t", 2**31, 2**62, 'q"\\\n'),  # escaped
]
FIGURES = {"outcome": "delivered", "status": 200, "attempt": 1, "duration_ms": 1.5}


def test_the_delivered_line_is_what_structlogs_chain_writes(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`Lines.delivered` writes what `info("delivery", ...)` and structlog's chain write,
    twice (the second time from the parts it remembered)."""
    configure_logging("info", "json")
    REDACTOR.current = Redactor([SECRET, OTHER])
    logger = structlog.get_logger("hookd.test").bind()
    fast = Lines(logger)
    assert fast.json is not None
    for n, case in enumerate(DELIVERED_CASES):
        bound = delivery_context(*case[:6])
        for status in (200, 204, 200):
            fast.delivered(*case, status, n + 1, 12.5, time.time())
            logger.info("delivery", **bound, _event=case[6], outcome="delivered",
                        status=status, attempt=n + 1, duration_ms=12.5)
            fast.delivered(*case, status, n + 1, 12.5, time.time())
            fast.info("delivery", bound, {"outcome": "delivered", "status": status,
                                          "attempt": n + 1, "duration_ms": 12.5}, case[6])
    _same_as_the_chain(capsys.readouterr().out, 6 * len(DELIVERED_CASES))


def test_the_delivered_line_leads_with_the_deliverys_context_in_its_order(
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    Lines(structlog.get_logger().bind()).delivered(*DELIVERED_CASES[0], 200, 1, 1.5, 0.0)
    (line,) = lines(capsys.readouterr().out)
    assert list(line) == ["hook", "webhook_id", "url", "topic", "partition", "offset",
                          "outcome", "status", "attempt", "duration_ms", "level",
                          "timestamp", "msg", "event"]
    assert list(line.values())[:10] == [*DELIVERED_CASES[0][:6], *FIGURES.values()]
    assert (line["level"], line["msg"], line["event"]) == ("info", "delivery", "Answered")


def test_the_delivered_line_is_stamped_at_the_time_it_is_given(
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    fast = Lines(structlog.get_logger().bind())
    for now in (1796000000.25, 1796000000.75, 1796000001.125, 1796000061.5):
        fast.delivered(*DELIVERED_CASES[0], 200, 1, 1.0, now)
    stamps = [line["timestamp"] for line in lines(capsys.readouterr().out)]
    assert stamps == ["2026-11-30T00:53:20.250000Z", "2026-11-30T00:53:20.750000Z",
                      "2026-11-30T00:53:21.125000Z", "2026-11-30T00:54:21.500000Z"]


def test_the_delivered_line_keeps_the_level_filter_and_goes_through_structlog_when_it_must(
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("warning", "json")
    Lines(structlog.get_logger().bind()).delivered(*DELIVERED_CASES[0], 200, 1, 1.0, 0.0)
    assert capsys.readouterr().out == ""
    configure_logging("info", "json")
    fast = Lines(structlog.get_logger().bind())
    with structlog.testing.capture_logs() as captured:  # changes the chain in place
        fast.delivered(*DELIVERED_CASES[0], 200, 1, 1.5, time.time())
    assert captured == [{"event": "delivery", **delivery_context(*DELIVERED_CASES[0][:6]),
                         "_event": "Answered", **FIGURES, "log_level": "info"}]
    configure_logging("info", "console")
    Lines(structlog.get_logger().bind()).delivered(*DELIVERED_CASES[0], 200, 1, 1.5,
                                                   time.time())
    assert re.search(r"\[info\s*\] delivery\s+attempt=1 duration_ms=1.5 event=Answered "
                     r"hook=crm offset=2 outcome=delivered partition=1 status=200 topic=t "
                     r"url=http://127.0.0.1/crm webhook_id=msg_0f", capsys.readouterr().out)


def test_the_parts_remembered_are_bounded(capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(written_by, "_MEMO_SIZE", 3)
    configure_logging("info", "json")
    fast = Lines(structlog.get_logger().bind())
    for n in range(10):
        fast.delivered(f"h{n}", "msg_0f", "http://x/", f"t{n}", n, n, f"E{n}", 200 + n, n + 1,
                       1.5, 0.0)
    for memo in (written_by._HEADS, written_by._PLACES, written_by._ANSWERS,
                 written_by._NAMED):
        assert 0 < len(memo) <= 3
    assert [(line["hook"], line["status"], line["event"])
            for line in lines(capsys.readouterr().out)] == [
        (f"h{n}", 200 + n, f"E{n}") for n in range(10)]


_TEXT = st.one_of(st.text(max_size=10), st.sampled_from([*SECRETS, "https://u:p@x/", "ok",
                                                         f"Ans{OTHER}", 'q"\\\n']))
_INT64 = st.integers(-2**63, 2**63 - 1)


@settings(max_examples=400, deadline=None)
@given(hook=_TEXT, webhook_id=_TEXT, url=_TEXT, topic=_TEXT, partition=_INT64, offset=_INT64,
       event=_TEXT,
       status=st.one_of(st.none(), st.integers(100, 599), st.booleans()),
       attempt=st.one_of(st.integers(1, 10**6), st.booleans()),
       duration_ms=st.one_of(st.floats(0, 1e7).map(lambda x: round(x, 1)), st.floats(),
                             st.integers(0, 10**6)),
       now=st.floats(1e9, 4e9))
def test_the_delivered_line_is_byte_for_byte_what_info_writes(
        hook: str, webhook_id: str, url: str, topic: str, partition: int, offset: int,
        event: str, status: int | None, attempt: int, duration_ms: float, now: float) -> None:
    """The delivered line, from its parts (remembered or serialized alone), is the very
    bytes `info` writes for the delivery's context (a dict, serialized whole): key order,
    numbers (NaN, -0.0, ints for a float, True for 1), escaping, masking, the timestamp."""
    configure_logging("info", "json")
    REDACTOR.current = Redactor([*SECRETS, OTHER])
    fast = Lines(structlog.get_logger().bind())
    written: list[bytes] = []
    fast._out = types.SimpleNamespace(msg=written.append)  # type: ignore[assignment]
    context = (hook, webhook_id, url, topic, partition, offset)
    for _ in range(2):  # (the second time from the parts remembered)
        fast.delivered(*context, event, status, attempt, duration_ms, now)
    saved = written_by.time
    written_by.time = types.SimpleNamespace(time=lambda: now)  # type: ignore[assignment]
    try:
        fast.info("delivery", delivery_context(*context),
                  {"outcome": "delivered", "status": status, "attempt": attempt,
                   "duration_ms": duration_ms}, event)
    finally:
        written_by.time = saved
    first, again, theirs = written
    assert first == again == theirs
    if OTHER not in webhook_id and "u:p@" not in webhook_id:  # (a digest: never masked)
        assert OTHER.encode() not in first and b"//u:p@" not in first
