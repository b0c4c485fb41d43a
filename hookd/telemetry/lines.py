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

    def delivered(self, hook: str, webhook_id: str, url: str, topic: str, partition: int,
                  offset: int, event: str, status: int | None, attempt: int,
                  duration_ms: float, now: float) -> None:
        """The line of a delivery's attempt answered 2xx at `now` (epoch seconds): what
        `info("delivery", delivery_context(hook, ..., offset), {"outcome": "delivered",
        "status": status, "attempt": attempt, "duration_ms": duration_ms}, event)` writes,
        from its parts, without a dict (a line per delivery: with the context built as a
        dict, then serialized, the line took 26.7 k instructions under callgrind, 23.6 k
        from its parts: `bench.stages --callgrind --stages log`)."""
        processors = self._processors
        if processors is None or processors[-1] is not self._renderer:
            return self.info("delivery", delivery_context(hook, webhook_id, url, topic,
                                                          partition, offset),
                             {"outcome": "delivered", "status": status, "attempt": attempt,
                              "duration_ms": duration_ms}, event)
        if self._level > logging.INFO:
            return None
        # what orjson writes for the whole dict, byte for byte: the parts that come back
        # line after line (the hook's, the partition's, the status and attempt, the
        # event's name: orjson's own bytes for them) remembered, the rest serialized
        # alone; the timestamp's second made once a second, its microseconds from a table.
        # Only exact ints are remembered by status and attempt (True == 1, not alike)
        stamp = self._stamp
        if status.__class__ is int and attempt.__class__ is int:
            dumps = orjson.dumps
            data = b"".join((
                _HEADS.get(hook) or _head(hook), dumps(webhook_id), b',"url":', dumps(url),
                _PLACES.get((topic, partition)) or _place(topic, partition), dumps(offset),
                _ANSWERS.get((status, attempt)) or _answer(status, attempt),
                dumps(duration_ms), b',"level":"info","timestamp":"', stamp.at_bytes(now),
                _NAMED.get(event) or _named(event)))
            if not REDACTOR._current.touches(data):
                self._out.msg(data)
                return None
            line = None
        else:
            line = _delivered_dict(hook, webhook_id, url, topic, partition, offset, status,
                                   attempt, duration_ms, stamp.at(now), event)
            data = orjson.dumps(line, default=_fallback)
            if not REDACTOR._current.touches(data):
                self._out.msg(data)
                return None
        # (rarely: a URL's userinfo, a secret echoed) masked key by key, as the chain does
        self._out.msg(_masked("info", line or _delivered_dict(
            hook, webhook_id, url, topic, partition, offset, status, attempt, duration_ms,
            stamp.at(now), event)))
        return None


def delivery_context(hook: str, webhook_id: str, url: str, topic: str, partition: int,
                     offset: int) -> dict[str, Any]:
    """A delivery's log context: the fields that lead each of its lines, in this order
    (`Lines.delivered` writes them in it too)."""
    return {"hook": hook, "webhook_id": webhook_id, "url": url, "topic": topic,
            "partition": partition, "offset": offset}


def _delivered_dict(hook: str, webhook_id: str, url: str, topic: str, partition: int,
                    offset: int, status: int | None, attempt: int, duration_ms: float,
                    timestamp: str, event: str) -> dict[str, Any]:
    """The delivered line as a dict, in its final key order."""
    return {**delivery_context(hook, webhook_id, url, topic, partition, offset),
            "outcome": "delivered", "status": status, "attempt": attempt,
            "duration_ms": duration_ms, "level": "info", "timestamp": timestamp,
            "msg": "delivery", "event": event}


# the delivered line's parts, remembered (a hook, a partition, a status and attempt, an
# event's name come back line after line), at most _MEMO_SIZE of each
_HEADS: dict[str, bytes] = {}
_PLACES: dict[tuple[str, int], bytes] = {}
_ANSWERS: dict[tuple[int, int], bytes] = {}
_NAMED: dict[str, bytes] = {}


def _remember(memo: dict[Any, bytes], key: Any, part: bytes) -> bytes:
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    memo[key] = part
    return part


def _head(hook: str) -> bytes:
    """The delivered line from its start to its webhook_id's value."""
    return _remember(_HEADS, hook, b'{"hook":' + orjson.dumps(hook) + b',"webhook_id":')


def _place(topic: str, partition: int) -> bytes:
    """The delivered line from after its url's value to its offset's value."""
    return _remember(_PLACES, (topic, partition), b',"topic":' + orjson.dumps(topic)
                     + b',"partition":' + orjson.dumps(partition) + b',"offset":')


def _answer(status: int, attempt: int) -> bytes:
    """The delivered line from after its offset's value to its duration's value."""
    return _remember(_ANSWERS, (status, attempt),
                     b',"outcome":"delivered","status":' + orjson.dumps(status)
                     + b',"attempt":' + orjson.dumps(attempt) + b',"duration_ms":')


def _named(event: str) -> bytes:
    """The delivered line from its timestamp's closing 'Z' to its end."""
    return _remember(_NAMED, event, b'Z","msg":"delivery","event":' + orjson.dumps(event)
                     + b"}")


def _masked(level: str, line: dict[str, Any]) -> bytes:
    """A line the whole-line scan found something in: masked key by key, as the chain
    masks it, and serialized again."""
    REDACTOR.processor(None, level, line)
    return orjson.dumps(line, default=_fallback)
