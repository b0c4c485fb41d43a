"""The libraries' own log records (aiokafka, aiohttp, asyncio: Python's `logging`) routed
through hookd's structlog chain, so they come out as hookd's lines (JSON, masked), and each
message at most once per 30 s. Written here, not taken from a library: structlog's
ProcessorFormatter renders stdlib records but does not hold back repeats, and the repeats
are the point (a cluster down is ~500 aiokafka lines a second)."""

from __future__ import annotations

import logging
import time
from typing import Any

import structlog


class LibraryLogs(logging.Handler):
    """The libraries' own log records (aiokafka, aiohttp, asyncio: Python's `logging`) as
    hookd's lines (JSON, masked, with `logger`), each message at most once per `every`
    seconds, the copies held back in between counted in the next one's `repeated`.

    Without it they reached Python's last-resort handler: bare text on stderr among the
    JSON lines, and many of them; with the three brokers of a cluster down, aiokafka logged
    each failed connection and metadata attempt, ~500 lines a second, while hookd says it
    once ("consumer failing", then "consumer stalled" and /readyz).
    A message is its logger and its unformatted text ("Unable connect to node with id %s:
    %s" is one message whatever the node); `keep` of them are remembered."""

    def __init__(self, every: float = 30.0, clock: Any = time.monotonic,
                 keep: int = 1024) -> None:
        super().__init__(logging.WARNING)
        self.every, self.clock, self.keep = every, clock, keep
        self._last: dict[tuple[str, str], float] = {}  # message -> when last written
        self._held: dict[tuple[str, str], int] = {}  # message -> copies not written since

    def emit(self, record: logging.LogRecord) -> None:
        try:
            key = (record.name, str(record.msg))
            now = self.clock()
            last = self._last.get(key)
            if last is not None and now - last < self.every:
                self._held[key] = self._held.get(key, 0) + 1
                return
            if last is None and len(self._last) >= self.keep:
                self._last.clear()
                self._held.clear()
            self._last[key] = now
            fields: dict[str, Any] = {"logger": record.name}
            if repeated := self._held.pop(key, 0):
                fields["repeated"] = repeated
            if record.exc_info:
                fields["exc_info"] = record.exc_info
            log = structlog.get_logger(record.name)
            level = ("critical" if record.levelno >= logging.CRITICAL else "error"
                     if record.levelno >= logging.ERROR else "warning")
            getattr(log, level)(record.getMessage(), **fields)
        except Exception:
            self.handleError(record)


def route_library_logs(level: int) -> None:
    """One LibraryLogs on the root logger (a reconfiguration replaces it), letting through
    WARNING and above, or hookd's own level if higher."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, LibraryLogs)]:
        root.removeHandler(handler)
    root.addHandler(LibraryLogs())
    root.setLevel(max(logging.WARNING, level))
