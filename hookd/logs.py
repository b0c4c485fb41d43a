"""structlog set-up: JSON lines on stdout (or console), secrets redacted last."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog

from hookd.redact import Redactor

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


_MEMO_SIZE = 4096  # distinct log strings remembered with their redacted form
_MEMO_LEN = 512  # longer strings are redacted every time
_OWN_KEYS = frozenset({"timestamp", "level"})  # written by our processors: never secret
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
                    if len(value) <= _MEMO_LEN:
                        if len(memo) >= _MEMO_SIZE:
                            memo.clear()
                        memo[value] = clean
                event_dict[key] = clean
            elif not isinstance(value, _SCALARS):
                event_dict[key] = redactor.value(value)
        return event_dict


REDACTOR = RedactorHolder()


class _SharedLogger:
    """A logger factory that hands out one logger: structlog asks for one on every
    `bind()` of a module-level logger (caching is off so reconfiguring works), and a
    BytesLogger holds nothing but its file."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def __call__(self, *_args: Any) -> Any:
        return self.logger


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        REDACTOR.processor,
        # the message goes to "msg", so "event" can carry the event name (bound as _event)
        structlog.processors.EventRenamer("msg", replace_by="_event"),
    ]
    if fmt == "json":
        processors.append(structlog.processors.JSONRenderer(serializer=orjson.dumps))
        factory: Any = _SharedLogger(structlog.BytesLogger(sys.stdout.buffer))
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
        factory = structlog.PrintLoggerFactory(sys.stdout)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
