"""Log lines on the hot path: a line per delivery outcome, written as structlog's JSON
chain (set up by hookd.telemetry.logs) would write it, without running the chain."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
import structlog

from hookd.telemetry import logs
from hookd.telemetry.logs import _MEMO_SIZE, REDACTOR, _fallback


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
        chain = logs._JSON  # the set-up in force, unless structlog was configured since
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
        if (context and status.__class__ is int and attempt.__class__ is int
                and duration_ms.__class__ is float and duration_ms > 0.0
                and _DELIVERED_KEYS.isdisjoint(context)):
            figures = _FIGURES.get((status, attempt, duration_ms)) or _figures(
                status, attempt, duration_ms)
            data = b"".join((orjson.dumps(context, default=_fallback)[:-1], figures,
                             stamp.at_bytes(now), _NAMED.get(event) or _named(event)))
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
