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
        self._lines: list[bytes] = []  # each without its newline (`_flush` puts them in)
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
                    self._lines.append(message)
                    self._flush()
                return
        self._lines.append(message)
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
        self._lines.append(b"")  # (each line's newline from the join: an append less each)
        data = b"\n".join(self._lines)
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

    def at_bytes(self, now: float) -> bytes:
        """`at(now)` without its closing Z, encoded (a line made of bytes: Lines.delivered)."""
        second = int(now)
        if second != self._second:
            self.at(now)  # (the new second's prefix)
        micro = int((now - second) * 1e6)
        return self._bytes + _DIGITS_B[micro // 1000] + _DIGITS_B[micro % 1000]


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
