"""The simulated contact center: its queues, agents, numbers and names, and time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

BASE_TIME: Final = datetime(2026, 11, 23, 9, 0, 0, tzinfo=UTC)
"""Where simulated time starts unless told otherwise (fixed, so runs are reproducible)."""

DIALER_END: Final = "CUSTOM->engine::dialer_member_end"


@dataclass(frozen=True, slots=True)
class SimEvent:
    """One record: its key (the call id), the event name and the whole JSON value."""

    key: str
    name: str
    value: dict[str, Any]

    def encoded(self, **extra: Any) -> bytes:
        return orjson.dumps({**self.value, **extra} if extra else self.value)


@dataclass(frozen=True, slots=True)
class Queue:
    id: int
    name: str
    type: str
    channel: str
    reporting: bool


@dataclass(frozen=True, slots=True)
class Agent:
    id: int
    user_id: int
    name: str
    extension: str
    login: str

    @property
    def email(self) -> str:
        return f"{self.login}@acme.example"


INBOUND = (Queue(7, "Support", "inbound", "call", True),
            Queue(8, "Sales", "inbound", "call", False),
            Queue(12, "Billing", "inbound", "call", True))
CHAT = Queue(21, "Web chat", "chat", "chat", True)
EMAIL = Queue(31, "E-mail", "task", "task", True)
DIALER = Queue(41, "Renewals", "predictive", "call", False)
DIDS = (("+15550100", "Support line"), ("+15550110", "Sales line"),
         ("+15550120", "Billing line"))
IVRS = ("main-menu", "language-select", "billing-ivr")
FIRST = ("Dana", "Lee", "Sam", "Alex", "Robin", "Kim", "Jordan", "Taylor", "Chris", "Pat",
          "Morgan", "Jamie", "Casey", "Riley", "Avery", "Quinn")
LAST = ("Ortiz", "Park", "Chu", "Novak", "Silva", "Khan", "Meyer", "Rossi", "Dubois", "Sato",
         "Okafor", "Larsen", "Haddad", "Moreau")
CODES = ("RESOLVED", "FOLLOW_UP", "ESCALATED", "NO_ACTION")


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")


def hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


Step = float | tuple[str, dict[str, Any]]
"""What a flow yields: a pause (seconds of simulated time), or an event happening now."""
