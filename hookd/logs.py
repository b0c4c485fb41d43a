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


class RedactorHolder:
    """The redactor in force; replaced on reload when the set of secrets changes."""

    def __init__(self) -> None:
        self.current = Redactor()

    def __call__(self) -> Redactor:
        return self.current

    def processor(self, logger: Any, name: str, event_dict: Any) -> Any:
        return self.current.processor(logger, name, event_dict)


REDACTOR = RedactorHolder()


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
        factory: Any = structlog.BytesLoggerFactory(sys.stdout.buffer)
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
        factory = structlog.PrintLoggerFactory(sys.stdout)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
