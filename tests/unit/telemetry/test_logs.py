"""hookd.telemetry.logs + hookd.telemetry.redact: JSON lines on stdout, `event`/`msg` keys,
secrets masked."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import sys
import threading
import types
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from hookd.telemetry import library_logs, logs
from hookd.telemetry.lines import Lines
from hookd.telemetry.logs import REDACTOR, configure_logging
from hookd.telemetry.redact import MASK, Redactor

SECRET = "s3cr3t-token-value"
OTHER = "hunter2-password"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    saved = structlog.get_config()
    redactor, chain = REDACTOR.current, logs._JSON
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**saved)
    REDACTOR.current, logs._JSON = redactor, chain
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(out: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.splitlines() if line.strip()]


def test_json_line_with_secrets_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    logs.REDACTOR.current = Redactor({SECRET, OTHER})
    log = structlog.get_logger("hookd.test")
    log.info("delivery", _event="Answered", hook="crm", url=f"https://x.example/?t={SECRET}",
             headers={"authorization": f"Bearer {SECRET}"}, attempts=[OTHER, "fine"], status=200)
    out = capsys.readouterr().out
    assert SECRET not in out and OTHER not in out
    (line,) = lines(out)
    assert line["msg"] == "delivery"
    assert line["event"] == "Answered"
    assert "_event" not in line
    assert line["hook"] == "crm"
    assert line["url"] == f"https://x.example/?t={MASK}"
    assert line["headers"] == {"authorization": f"Bearer {MASK}"}
    assert line["attempts"] == [MASK, "fine"]
    assert line["status"] == 200
    assert line["level"] == "info"
    assert line["timestamp"].endswith("Z")


def test_without_an_event_name_there_is_no_event_key(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    structlog.get_logger().warning("reload rejected", generation=2)
    (line,) = lines(capsys.readouterr().out)
    assert line["msg"] == "reload rejected"
    assert "event" not in line
    assert line["level"] == "warning"
    assert line["generation"] == 2


def test_secret_in_the_message_and_url_userinfo(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug", "json")
    REDACTOR.current = Redactor([SECRET])
    structlog.get_logger().debug(f"token {SECRET} used", target="https://user:pw@crm.example/x")
    out = capsys.readouterr().out
    assert SECRET not in out and "user:pw" not in out
    (line,) = lines(out)
    assert line["msg"] == f"token {MASK} used"
    assert line["target"] == f"https://{MASK}@crm.example/x"


def test_bound_context_is_redacted_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    REDACTOR.current = Redactor([SECRET])
    structlog.contextvars.bind_contextvars(token=SECRET)
    structlog.get_logger().bind(auth=f"x-{SECRET}-y").info("x")
    out = capsys.readouterr().out
    assert SECRET not in out
    (line,) = lines(out)
    assert line["token"] == MASK and line["auth"] == f"x-{MASK}-y"


def test_exception_text_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    REDACTOR.current = Redactor([SECRET])
    try:
        raise RuntimeError(f"bad token {SECRET}")
    except RuntimeError:
        structlog.get_logger().exception("boom")
    out = capsys.readouterr().out
    assert SECRET not in out
    (line,) = lines(out)
    assert "RuntimeError: bad token ***" in line["exception"]


def test_reload_swaps_the_redactor(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    log = structlog.get_logger()
    REDACTOR.current = Redactor([SECRET])
    log.info("one", value=SECRET)
    REDACTOR.current = Redactor([OTHER])  # the old secret is no longer a secret
    log.info("two", value=OTHER, old=SECRET)
    first, second = lines(capsys.readouterr().out)
    assert first["value"] == MASK
    assert second["value"] == MASK and second["old"] == SECRET


def test_level_filters(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("warning", "json")
    log = structlog.get_logger()
    log.info("hidden")
    log.debug("hidden")
    log.warning("shown")
    log.error("shown too")
    assert [line["msg"] for line in lines(capsys.readouterr().out)] == ["shown", "shown too"]


def test_console_format_is_redacted_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "console")
    REDACTOR.current = Redactor([SECRET])
    structlog.get_logger().info("delivery", _event="Answered", token=SECRET)
    out = capsys.readouterr().out
    assert SECRET not in out
    assert "delivery" in out and "Answered" in out and MASK in out
    # the message is the line's message column, the event name a key like any other
    assert re.search(r"\[info\s*\] delivery\s+event=Answered token=\*\*\*", out), out


def test_console_format_masks_reprs(capsys: pytest.CaptureFixture[str]) -> None:
    """What the console writes as a repr (an object, a container holding one) is masked."""
    configure_logging("info", "console")
    REDACTOR.current = Redactor([SECRET])
    structlog.get_logger().info("odd", thing=Odd(), things=[1, Odd()], n=3, ok=True)
    out = capsys.readouterr().out
    assert SECRET not in out, out
    # (quoted, as the console quotes every value with a space in it)
    assert f"thing='<Odd {MASK}>'" in out and f"things='[1, <Odd {MASK}>]'" in out, out
    assert "n=3" in out and "ok=True" in out


def test_short_values_are_not_treated_as_secrets() -> None:
    redactor = Redactor(["abc", "", SECRET])
    assert redactor("abc and " + SECRET) == f"abc and {MASK}"


def test_longest_secret_wins() -> None:
    redactor = Redactor(["token", "token-long-version"])
    assert redactor("token-long-version") == MASK


def test_fast_timestamps_match_structlogs() -> None:
    ours = logs.FastTimeStamper()
    theirs = structlog.processors.TimeStamper(fmt="iso", utc=True)
    for _ in range(3):
        a = ours(None, "info", {})["timestamp"]
        b = theirs(None, "info", {})["timestamp"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", a), a
        # the same instant, read from the clock a moment apart: whatever boundary lies between
        assert abs(datetime.fromisoformat(a) - datetime.fromisoformat(b)) < timedelta(seconds=2)


def test_fast_timestamps_follow_the_clock_across_seconds_and_days(
        monkeypatch: pytest.MonkeyPatch) -> None:
    midnight = datetime(2026, 11, 22, tzinfo=UTC).timestamp()
    # binary fractions, so the microseconds are exact
    ticks = [midnight - 1.5, midnight - 1.25, midnight - 0.03125, midnight, midnight + 0.5]
    clock = iter(ticks)
    monkeypatch.setattr(logs, "time", types.SimpleNamespace(time=lambda: next(clock)))
    ours = logs.FastTimeStamper()
    got = [ours(None, "info", {})["timestamp"] for _ in ticks]
    assert got == ["2026-11-21T23:59:58.500000Z", "2026-11-21T23:59:58.750000Z",
                   "2026-11-21T23:59:59.968750Z", "2026-11-22T00:00:00.000000Z",
                   "2026-11-22T00:00:00.500000Z"]


class RawStream(io.RawIOBase):
    """stdout as ``PYTHONUNBUFFERED=1`` leaves it: every write reaches the "kernel" (here a
    list), at most `chunk` bytes at a time, as a raw file may take less than it is given."""

    def __init__(self, chunk: int = 1 << 20) -> None:
        self.writes: list[bytes] = []
        self.chunk = chunk

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        taken = bytes(data[: self.chunk])
        self.writes.append(taken)
        return len(taken)


async def test_lines_written_in_one_loop_iteration_reach_the_stream_in_one_write() -> None:
    stream = RawStream()
    logger = logs.BatchedBytesLogger(stream)
    for n in range(5):
        logger.info(b'{"n": %d}' % n)
    assert stream.writes == []  # not yet: at the end of this iteration
    await asyncio.sleep(0)
    assert stream.writes == [b"".join(b'{"n": %d}\n' % n for n in range(5))]
    logger.info(b"{}")
    await asyncio.sleep(0)
    assert stream.writes[1:] == [b"{}\n"]


async def test_under_pythonunbuffered_a_loop_iterations_lines_are_one_write(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """hookd.service sets PYTHONUNBUFFERED=1: stdout's buffer is then the raw file."""
    raw = RawStream()
    monkeypatch.setattr(sys, "stdout", types.SimpleNamespace(buffer=raw))
    configure_logging("info", "json")
    lines_ = Lines(structlog.get_logger().bind())
    for n in range(5):
        lines_.info("delivery", {"hook": "crm", "offset": n}, {"outcome": "delivered"})
    structlog.get_logger().info("and one through structlog")
    await asyncio.sleep(0)
    assert len(raw.writes) == 1
    assert [orjson.loads(line)["msg"] for line in raw.writes[0].splitlines()] == (
        ["delivery"] * 5 + ["and one through structlog"])


async def test_a_short_write_is_completed_and_a_full_buffer_written_at_once() -> None:
    stream = RawStream(chunk=7)
    logger = logs.BatchedBytesLogger(stream, limit=40)
    lines = [b'{"n": %d, "pad": "xxxxxxxxxx"}' % n for n in range(4)]  # 30 bytes each
    logger.info(lines[0])
    assert stream.writes == []
    logger.info(lines[1])  # 62 bytes waiting: over the limit, written in this iteration
    assert b"".join(stream.writes) == lines[0] + b"\n" + lines[1] + b"\n"
    logger.info(lines[2])
    logger.info(lines[3])
    await asyncio.sleep(0)
    assert b"".join(stream.writes) == b"".join(line + b"\n" for line in lines)
    assert max(len(w) for w in stream.writes) == 7


async def test_a_line_from_another_thread_is_written_at_once_not_with_the_loops() -> None:
    stream = RawStream()
    logger = logs.BatchedBytesLogger(stream)
    logger.info(b'{"from": "loop"}')
    worker = threading.Thread(target=logger.info, args=(b'{"from": "thread"}',))
    worker.start()
    worker.join()  # the loop has not had its turn: its line still waits
    assert stream.writes == [b'{"from": "thread"}\n']
    await asyncio.sleep(0)
    assert stream.writes == [b'{"from": "thread"}\n', b'{"from": "loop"}\n']


def test_lines_a_closed_loop_left_waiting_go_out_with_the_next_loops() -> None:
    stream = RawStream()
    logger = logs.BatchedBytesLogger(stream)
    old = asyncio.new_event_loop()
    old.call_soon(logger.info, b"{}")
    old.call_soon(old.stop)  # the loop ends with this batch of callbacks, before the flush
    old.run_forever()
    old.close()
    assert stream.writes == []

    async def log() -> None:
        logger.info(b"[]")
        await asyncio.sleep(0)
        assert b"".join(stream.writes) == b"{}\n[]\n"

    asyncio.run(log())


def test_outside_a_loop_each_line_is_written_at_once() -> None:
    stream = io.BytesIO()
    flushed: list[int] = []
    stream.flush = lambda: flushed.append(len(stream.getvalue()))  # type: ignore[method-assign]
    logger = logs.BatchedBytesLogger(stream)
    logger.warning(b"{}")
    assert flushed == [3]
    logger.warning(b"{}")
    assert flushed == [3, 6]


class Odd:
    def __repr__(self) -> str:
        return f"<Odd {SECRET}>"  # masked too, although only its repr reaches the line


FAST_CASES: list[tuple[str, dict[str, Any], dict[str, Any], str | None]] = [
    ("delivery", {"hook": "crm", "url": f"https://x.example/?t={SECRET}",
                  "topic": "cc.events", "partition": 3, "offset": 17},
     {"outcome": "delivered", "status": 200, "attempt": 1, "duration_ms": 1.5}, "Answered"),
    ("delivery", {"hook": "legacy", "url": "http://127.0.0.1/legacy"},  # no event name
     {"outcome": "failed", "retryable": True, "status": None, "error": f"boom {SECRET}",
      "nested": {"a": [SECRET, 1, 2.5], "b": None}, "odd": Odd()}, None),
    (f"message with {OTHER}", {}, {"msg_field": "x", "when": datetime(2026, 11, 21, tzinfo=UTC)},
     None),
    ("delivery", {"hook": "crm", "webhook_id": "msg_0f", "topic": "t",
                  "url": "http://127.0.0.1/crm", "partition": 1, "offset": 2},  # nothing to mask
     {"outcome": "delivered", "status": 200, "attempt": 1, "duration_ms": 0.5}, "Answered"),
    ("delivery", {"hook": "crm", "url": "https://u:p@crm.example/"},  # userinfo
     {"outcome": "parked", "attempt": 2, "retry_in_s": 30.0}, f"Ans{OTHER}"),
]


def _same_as_the_chain(out: str, lines_written: int) -> None:
    """Each line ours, then structlog's chain's: the same keys in the same order, the
    same values (timestamps aside: a microsecond apart)."""
    assert SECRET not in out and OTHER not in out and "u:p@" not in out
    written = lines(out)
    assert len(written) == 2 * lines_written
    for ours, theirs in zip(written[::2], written[1::2], strict=True):
        assert ours.pop("timestamp").endswith("Z") and theirs.pop("timestamp").endswith("Z")
        assert list(ours.items()) == list(theirs.items())  # same keys, same order


def test_fast_lines_write_what_structlogs_chain_writes(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    configure_logging("info", "json")
    REDACTOR.current = Redactor([SECRET, OTHER])
    logger = structlog.get_logger("hookd.test").bind()
    fast = Lines(logger)
    assert fast.json is not None  # the fast path is the one under test
    for msg, context, fields, event in FAST_CASES:
        for level in ("info", "warning"):
            getattr(fast, level)(msg, context, fields, event)
            named = {"_event": event} if event is not None else {}
            getattr(logger, level)(msg, **context, **named, **fields)
    _same_as_the_chain(capsys.readouterr().out, 2 * len(FAST_CASES))


def test_fast_lines_keep_the_level_filter(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("warning", "json")
    fast = Lines(structlog.get_logger().bind())
    fast.info("hidden", {}, {})
    fast.warning("shown", {"hook": "h"}, {})
    assert [line["msg"] for line in lines(capsys.readouterr().out)] == ["shown"]


def test_fast_lines_go_through_structlog_when_it_is_not_the_json_chain(
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "console")
    console = Lines(structlog.get_logger().bind())
    assert console.json is None
    console.info("delivery", {"hook": "crm"}, {"status": 200})
    assert re.search(r"\[info\s*\] delivery\s+hook=crm status=200", capsys.readouterr().out)

    configure_logging("info", "json")
    fast = Lines(structlog.get_logger().bind())
    with structlog.testing.capture_logs() as captured:  # changes the chain in place
        fast.info("delivery", {"hook": "crm"}, {"status": 200})
    assert captured == [{"event": "delivery", "hook": "crm", "status": 200,
                         "log_level": "info"}]
    assert capsys.readouterr().out == ""

    structlog.configure(processors=[structlog.processors.JSONRenderer()])  # someone else's
    assert Lines(structlog.get_logger().bind()).json is None


def _library_handler() -> library_logs.LibraryLogs:
    (handler,) = [h for h in logging.getLogger().handlers
                  if isinstance(h, library_logs.LibraryLogs)]
    return handler


def test_library_records_are_json_lines_once_per_period(
        capsys: pytest.CaptureFixture[str]) -> None:
    """aiokafka's own warnings (here: what it logs for each connection attempt while the
    brokers are down) are hookd's JSON lines, masked, on stdout (nothing bare on stderr),
    one per message per period, the held-back copies counted in the next one."""
    configure_logging("info", "json")
    configure_logging("info", "json")  # a reload: still one handler
    logs.REDACTOR.current = Redactor({SECRET})
    now = [1000.0]
    handler = _library_handler()
    handler.clock = lambda: now[0]
    conn = logging.getLogger("aiokafka.conn")
    for i in range(300):  # three brokers, a hundred attempts each
        conn.error("Unable connect to node with id %s: %s", i % 3, f"refused {SECRET}")
    logging.getLogger("aiokafka").warning("Marking the coordinator dead (node %s)", 1)
    logging.getLogger("aiokafka").info("not shown: under WARNING")
    now[0] += 29.9
    conn.error("Unable connect to node with id %s: %s", 1, "refused")
    now[0] += 0.2
    conn.error("Unable connect to node with id %s: %s", 2, "refused")
    captured = capsys.readouterr()
    assert captured.err == ""
    assert SECRET not in captured.out
    first, coordinator, later = lines(captured.out)
    assert first["msg"] == f"Unable connect to node with id 0: refused {MASK}"
    assert (first["level"], first["logger"]) == ("error", "aiokafka.conn")
    assert "repeated" not in first
    assert coordinator["msg"] == "Marking the coordinator dead (node 1)"
    assert (coordinator["level"], coordinator["logger"]) == ("warning", "aiokafka")
    assert later["msg"] == "Unable connect to node with id 2: refused"
    assert later["repeated"] == 300  # 299 of the loop's, one 29.9 s after the first


def test_library_records_follow_a_level_above_warning(
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("error", "json")
    logging.getLogger("aiohttp.client").warning("dropped")
    logging.getLogger("asyncio").error("Task exception was never retrieved")
    (line,) = lines(capsys.readouterr().out)
    assert (line["msg"], line["logger"]) == ("Task exception was never retrieved", "asyncio")


def test_library_messages_remembered_are_bounded() -> None:
    handler = library_logs.LibraryLogs(keep=10)
    configure_logging("info", "json")
    for i in range(25):  # messages that differ in their text, not only their arguments
        handler.emit(logging.LogRecord("lib", logging.WARNING, __file__, 1, f"m{i}", None,
                                       None))
    assert len(handler._last) <= 10


QUOTED = 'pa"ss\\word-01'  # a secret with what JSON escapes in it


def test_fast_lines_with_clean_strings_are_not_masked_key_by_key(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A line with no secret and no '@' in it is written as it is: one scan of the whole
    line, not the processor's loop over its keys; a line with one is masked key by key."""
    configure_logging("info", "json")
    REDACTOR.current = Redactor([SECRET, QUOTED])
    keyed: list[dict[str, Any]] = []
    processor = REDACTOR.processor

    def spy(logger: Any, name: str, event_dict: Any) -> Any:
        keyed.append(dict(event_dict))
        return processor(logger, name, event_dict)

    monkeypatch.setattr(REDACTOR, "processor", spy)
    fast = Lines(structlog.get_logger().bind())
    fast.info("delivery", {"hook": "crm", "url": "http://127.0.0.1/x", "offset": 3},
              {"status": 200})
    assert keyed == []
    fast.warning("delivery", {"hook": "crm"}, {"error": f"echo {QUOTED}"})
    fast.warning("delivery", {"hook": "crm", "url": "https://u:p@crm.example/"}, {})
    assert len(keyed) == 2
    out = capsys.readouterr().out
    assert "pa\\\"ss" not in out and "u:p@" not in out
    clean, echoed, userinfo = lines(out)
    assert clean["url"] == "http://127.0.0.1/x"
    assert echoed["error"] == f"echo {MASK}"
    assert userinfo["url"] == f"https://{MASK}@crm.example/"


SECRETS = [SECRET, QUOTED, "tab\there", "ünïcode-sécret", "a/b?c d+e"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(SECRETS), st.text(max_size=12)), max_size=5))
def test_a_whole_line_scan_never_misses_what_masking_would_change(parts: list[str]) -> None:
    """`touches` may raise a false alarm, never miss: whenever masking changes a string,
    the JSON line holding it is said to be touched."""
    redactor = Redactor(SECRETS)
    for forms in (SECRETS, [quote(s, safe="") for s in SECRETS]):
        text = "".join(forms[i % len(forms)] if p in SECRETS else p
                       for i, p in enumerate(parts))
        if redactor(text) != text:
            assert redactor.touches(orjson.dumps({"k": [text]}))
        if not redactor.touches(orjson.dumps({"k": text})):
            assert redactor(text) == text


def test_the_timestamp_digits_are_the_microseconds_zero_padded() -> None:
    stamp = logs.FastTimeStamper()
    for micro in (0, 1, 999, 1000, 1001, 12345, 500000, 999999):
        now = 1796000000 + micro / 1e6
        assert stamp.at(now) == (f"2026-11-30T00:53:20."
                                 f"{int((now - int(now)) * 1e6):06d}Z")
