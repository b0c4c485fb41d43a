"""structlog set-up: JSON lines on stdout (or console), secrets redacted last."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
import structlog

from hookd.telemetry.library_logs import route_library_logs
from hookd.telemetry.redact import Redactor

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


_MEMO_SIZE = 4096  # distinct log strings remembered with their redacted form
_MEMO_LEN = 512  # longer strings are redacted every time
# written by our processors, or a digest (`webhook_id`, unique per delivery: it would only
# churn the memo): never a secret
_OWN_KEYS = frozenset({"timestamp", "level", "webhook_id"})
_SCALARS = (int, float, bool, type(None))


class RedactorHolder:
    """The redactor in force; replaced on reload when the set of secrets changes.

    Its log processor is on the hot path (a line per delivery): strings are redacted
    through a small memo (a hook id, a URL or an event name comes back on every line),
    numbers are left alone, and the memo is dropped whenever the redactor is replaced.
    """

    def __init__(self) -> None:
        self._current = Redactor()
        self._memo: dict[str, str] = {}

    @property
    def current(self) -> Redactor:
        return self._current

    @current.setter
    def current(self, redactor: Redactor) -> None:
        self._current = redactor
        self._memo = {}

    def __call__(self) -> Redactor:
        return self._current

    def processor(self, logger: Any, name: str, event_dict: Any) -> Any:
        redactor, memo = self._current, self._memo
        for key, value in event_dict.items():
            if value.__class__ is str:
                if key in _OWN_KEYS:
                    continue
                clean = memo.get(value)
                if clean is None:
                    clean = redactor(value)
                    if clean == value:
                        clean = value  # (then the line keeps its own string)
                    if len(value) <= _MEMO_LEN:
                        if len(memo) >= _MEMO_SIZE:
                            memo.clear()
                        memo[value] = clean
                if clean is not value:
                    event_dict[key] = clean
            elif not isinstance(value, _SCALARS):
                event_dict[key] = redactor.value(value)
        return event_dict


REDACTOR = RedactorHolder()


class BatchedBytesLogger:
    """Writes JSON lines to a binary stream, gathered into one write(2) per event-loop
    iteration: a busy daemon writes a line per delivery, and a system call for each was a
    cost of its own (and, under systemd, a wake-up of journald for each).

    It gathers the lines itself rather than trusting the stream's buffer: with
    ``PYTHONUNBUFFERED=1`` (hookd.service sets it, so that nothing sits in a buffer when
    the process dies) ``sys.stdout.buffer`` is the raw file, and every write reached the
    kernel. Lines reach the stream before the loop next waits for I/O, or sooner once
    `limit` bytes are waiting. Outside a running loop (the CLI, start-up), and from another
    thread while the loop runs, each line is written at once."""

    def __init__(self, stream: Any, limit: int = 1 << 16) -> None:
        self._stream = stream
        self._limit = limit
        self._lines: list[bytes] = []
        self._size = 0
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the lines wait for
        self._thread = 0  # the thread it runs in
        self._scheduled = False  # a flush is due in the loop's current iteration

    def msg(self, message: bytes) -> None:
        loop = self._loop
        if loop is None or not loop.is_running() or threading.get_ident() != self._thread:
            loop = self._running_here()
            if loop is None:
                if self._loop is not None and self._loop.is_running():  # another thread
                    self._write(message + b"\n")  # (the loop's lines are the loop's)
                else:
                    self._lines.append(message + b"\n")
                    self._flush()
                return
        lines = self._lines
        lines.append(message)
        lines.append(b"\n")
        self._size += len(message) + 1
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush_due)
        elif self._size >= self._limit:
            self._flush()

    def _running_here(self) -> asyncio.AbstractEventLoop | None:
        """The loop running in this thread, remembered (asking costs a getpid(2))."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        if loop is not self._loop:  # a new loop: what an old one left waiting goes now
            self._flush()
            self._scheduled = False
        self._loop, self._thread = loop, threading.get_ident()
        return loop

    def _flush_due(self) -> None:
        self._scheduled = False
        self._flush()

    def _flush(self) -> None:
        if not self._lines:
            return
        data = b"".join(self._lines)
        self._lines.clear()
        self._size = 0
        self._write(data)

    def _write(self, data: bytes) -> None:
        with contextlib.suppress(OSError, ValueError):  # a closed or broken stdout
            view = memoryview(data)
            while view:
                written = self._stream.write(view)
                if written is None:  # a non-blocking stdout that is full: the rest is lost
                    break
                view = view[written:]
            self._stream.flush()

    log = debug = info = warn = warning = err = error = critical = exception = msg
    fatal = failure = msg


_DIGITS = tuple(f"{n:03d}" for n in range(1000))  # a timestamp's microseconds, in two
_DIGITS_B = tuple(digits.encode() for digits in _DIGITS)


class FastTimeStamper:
    """ISO-8601 UTC timestamps like structlog's TimeStamper(fmt="iso", utc=True), with the
    date and time up to the second formatted once per second rather than once per line."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""
        self._bytes = b""  # the prefix, encoded (`Lines.delivered` writes bytes)

    def __call__(self, _logger: Any, _name: str, event_dict: Any) -> Any:
        event_dict["timestamp"] = self.at(time.time())
        return event_dict

    def at(self, now: float) -> str:
        """The timestamp of `now` (epoch seconds)."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            self._bytes = self._prefix.encode()
        # the microseconds as two 3-digit strings from a table: `:06d` went through the
        # format-spec machinery (callgrind: ~2 k instructions a line)
        micro = int((now - second) * 1e6)
        return f"{self._prefix}{_DIGITS[micro // 1000]}{_DIGITS[micro % 1000]}Z"


class _SharedLogger:
    """A logger factory that hands out one logger: structlog asks for one on every
    `bind()` of a module-level logger (caching is off so reconfiguring works), and a
    BytesLogger holds nothing but its file."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def __call__(self, *_args: Any) -> Any:
        return self.logger


class _JsonChain(NamedTuple):
    """What configure_logging set up for the JSON format, for `Lines` to write as it would."""

    processors: list[Any]
    renderer: Any
    out: BatchedBytesLogger
    level: int
    stamp: FastTimeStamper


_JSON: _JsonChain | None = None  # the JSON set-up in force, if the format is JSON


def _fallback(value: Any) -> Any:
    """What JSON cannot hold is written as its repr, masked too (the redacting processor
    has run before, on the object itself)."""
    return REDACTOR()(repr(value))


def _console_reprs(_logger: Any, _name: str, event_dict: Any) -> Any:
    """The console renderer writes what is not a string or a number as its repr: masked
    here, as `_fallback` masks it for JSON (an object's repr may hold a secret)."""
    redact = REDACTOR()
    for key, value in event_dict.items():
        if not isinstance(value, (str, *_SCALARS)):
            event_dict[key] = redact(repr(value))
    return event_dict


class Lines:
    """Log lines on the hot path: a line per delivery outcome.

    With the JSON format it writes exactly what structlog's processor chain would (same
    keys in the same order, secrets masked by the same processor) without running the
    chain: merging context variables (hookd binds none), a bound logger per call,
    processor by processor. That was ~80 k of a parked delivery's ~560 k instructions
    (callgrind). With another format, or once the chain was changed in place (as
    `structlog.testing.capture_logs` does), lines go through structlog as before.

    Secrets: the line is serialized first and scanned whole, once (`Redactor.touches`:
    every secret's forms and '@', in one automaton); only a line where that finds
    something is masked key by key through the processor and serialized again (what it
    writes is the same either way: the scan misses nothing masking would change).

    Like a bound logger, it keeps the set-up in force when it was made.
    """

    __slots__ = ("_level", "_out", "_processors", "_renderer", "_stamp", "json", "logger")

    def __init__(self, logger: Any) -> None:
        self.logger = logger
        chain = _JSON  # unless structlog was configured since, by someone else
        self.json = chain if chain and structlog.get_config()["processors"] is chain.processors \
            else None
        # the set-up's parts, each a slot: read per line, a named tuple's field costs a
        # descriptor call each time (callgrind: ~0.8 k instructions a delivered line)
        self._processors: list[Any] | None = None
        if self.json is not None:
            self._processors, self._renderer, self._out, self._level, self._stamp = (
                self.json.processors, self.json.renderer, self.json.out, self.json.level,
                self.json.stamp)

    def info(self, msg: str, context: dict[str, Any], fields: dict[str, Any],
             event: str | None = None) -> None:
        self._write("info", logging.INFO, msg, context, fields, event)

    def warning(self, msg: str, context: dict[str, Any], fields: dict[str, Any],
                event: str | None = None) -> None:
        self._write("warning", logging.WARNING, msg, context, fields, event)

    def _write(self, level: str, number: int, msg: str, context: dict[str, Any],
               fields: dict[str, Any], event: str | None) -> None:
        """`event`: the event's name, the line's "event" (the chain's `_event`)."""
        processors = self._processors  # (changed in place by capture_logs: structlog's)
        if processors is None or processors[-1] is not self._renderer or "exc_info" in fields:
            if event is not None:
                fields = {**fields, "_event": event}
            getattr(self.logger, level)(msg, **context, **fields)
            return
        if number < self._level:
            return
        # the chain's order: context and fields, level, timestamp, then EventRenamer moves
        # the message to "msg" and "_event" to "event"
        line = {**context, **fields}
        line["level"] = level
        line["timestamp"] = self._stamp.at(time.time())
        line["msg"] = msg
        if event is not None:
            line["event"] = event
        data = orjson.dumps(line, default=_fallback)
        if REDACTOR._current.touches(data):  # (rarely: a URL's userinfo, a secret echoed)
            data = _masked(level, line)
        self._out.msg(data)

    def delivered(self, context: dict[str, Any], event: str | None, status: int | None,
                  attempt: int, duration_ms: float, now: float) -> None:
        """The line of an attempt answered 2xx at `now` (epoch seconds): what
        `info("delivery", context, {"outcome": "delivered", "status": status, "attempt":
        attempt, "duration_ms": duration_ms}, event)` writes, without a dict per line
        where it can (a line per delivery: building and serializing the 15-key dict was
        ~11 k of its ~27 k instructions under callgrind); else built in its final key
        order in one go. Either way the bytes are the same."""
        processors = self._processors
        if processors is None or processors[-1] is not self._renderer or event is None:
            return self.info("delivery", context, {
                "outcome": "delivered", "status": status, "attempt": attempt,
                "duration_ms": duration_ms}, event)
        if self._level > logging.INFO:
            return None
        # the context as orjson writes it, then the rest from parts made once: the figures
        # (by status, attempt and duration: orjson's own bytes for them) and the event's
        # name, each remembered; the timestamp's second (made once a second) and its
        # microseconds from a table. What orjson writes for the whole dict, byte for byte,
        # when the context is not empty and holds none of the keys that follow (they would
        # replace its own, in its place); the figures remembered only when equal ones are
        # written alike (exact ints and a float above 0: not -0.0 beside 0.0, not NaN)
        stamp = self._stamp
        second = int(now)
        if second != stamp._second:
            stamp.at(now)  # (the new second's prefix)
        if (context and status.__class__ is int and attempt.__class__ is int
                and duration_ms.__class__ is float and duration_ms > 0.0
                and _DELIVERED_KEYS.isdisjoint(context)):
            figures = _FIGURES.get((status, attempt, duration_ms)) or _figures(
                status, attempt, duration_ms)
            micro = int((now - second) * 1e6)
            data = b"".join((orjson.dumps(context, default=_fallback)[:-1], figures,
                             stamp._bytes, _DIGITS_B[micro // 1000], _DIGITS_B[micro % 1000],
                             _NAMED.get(event) or _named(event)))
            if not REDACTOR._current.touches(data):
                self._out.msg(data)
                return None
            line = None
        else:
            line = self._delivered_dict(context, status, attempt, duration_ms, stamp.at(now),
                                        event)
            data = orjson.dumps(line, default=_fallback)
            if not REDACTOR._current.touches(data):
                self._out.msg(data)
                return None
        # (rarely: a URL's userinfo, a secret echoed) masked key by key, as the chain does
        self._out.msg(_masked("info", line or self._delivered_dict(
            context, status, attempt, duration_ms, stamp.at(now), event)))
        return None

    @staticmethod
    def _delivered_dict(context: dict[str, Any], status: int | None, attempt: int,
                        duration_ms: float, timestamp: str, event: str) -> dict[str, Any]:
        return {**context, "outcome": "delivered", "status": status, "attempt": attempt,
                "duration_ms": duration_ms, "level": "info", "timestamp": timestamp,
                "msg": "delivery", "event": event}


# the keys `Lines.delivered` writes after the context
_DELIVERED_KEYS = frozenset({"outcome", "status", "attempt", "duration_ms", "level",
                             "timestamp", "msg", "event"})
# the delivered line's parts, remembered (a status, an attempt, a duration or an event's
# name comes back line after line), at most _MEMO_SIZE of each
_FIGURES: dict[tuple[int, int, float], bytes] = {}
_NAMED: dict[str, bytes] = {}


def _figures(status: int, attempt: int, duration_ms: float) -> bytes:
    """The delivered line from its outcome to its timestamp's opening quote."""
    figures = (b',"outcome":"delivered",'
               + orjson.dumps({"status": status, "attempt": attempt,
                               "duration_ms": duration_ms})[1:-1]
               + b',"level":"info","timestamp":"')
    if len(_FIGURES) >= _MEMO_SIZE:
        _FIGURES.clear()
    _FIGURES[status, attempt, duration_ms] = figures
    return figures


def _named(event: str) -> bytes:
    """The delivered line from its timestamp's closing 'Z' to its end."""
    named = b'Z","msg":"delivery","event":' + orjson.dumps(event) + b"}"
    if len(_NAMED) >= _MEMO_SIZE:
        _NAMED.clear()
    _NAMED[event] = named
    return named


def _masked(level: str, line: dict[str, Any]) -> bytes:
    """A line the whole-line scan found something in: masked key by key, as the chain
    masks it, and serialized again."""
    REDACTOR.processor(None, level, line)
    return orjson.dumps(line, default=_fallback)


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    global _JSON
    stamp = FastTimeStamper()
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        stamp,
        structlog.processors.format_exc_info,
        REDACTOR.processor,
        # the message goes to "msg", so "event" can carry the event name (bound as _event)
        structlog.processors.EventRenamer("msg", replace_by="_event"),
    ]
    _JSON = None
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps, default=_fallback)
        processors.append(renderer)
        out = BatchedBytesLogger(sys.stdout.buffer)
        factory: Any = _SharedLogger(out)
        _JSON = _JsonChain(processors, renderer, out, _LEVELS[level], stamp)
    else:
        processors.append(_console_reprs)
        processors.append(structlog.dev.ConsoleRenderer(colors=False, event_key="msg"))
        factory = structlog.PrintLoggerFactory(sys.stdout)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
    route_library_logs(_LEVELS[level])
