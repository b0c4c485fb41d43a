"""A circuit breaker, one per endpoint: park deliveries instead of hammering a dead one.

Closed → (N failures in a row) → open for a cooldown → half-open: one probe → closed on
success, open again with a doubled cooldown (up to max_cooldown) on failure.
"""

from __future__ import annotations

from dataclasses import dataclass

from hookd.delivery.retries import ErrorKind, Outcome, Verdict


def counts_as_failure(outcome: Outcome) -> bool:
    """Endpoint trouble, not the request's fault: timeouts, connection errors, 5xx, 429."""
    if outcome.verdict is not Verdict.RETRY:
        return False
    return outcome.kind in (ErrorKind.TIMEOUT, ErrorKind.CONNECT) or (
        outcome.status is not None and (outcome.status >= 500 or outcome.status == 429))


@dataclass(frozen=True, slots=True)
class CircuitPolicy:
    failures: int = 5  # in a row, to open
    cooldown: float = 30.0  # open this long the first time
    max_cooldown: float = 600.0  # the doubling stops here


class Circuit:
    __slots__ = ("cooldown", "failures", "open_until", "policy", "probing")

    def __init__(self, policy: CircuitPolicy) -> None:
        self.policy = policy
        self.failures = 0
        self.open_until = 0.0  # > 0: open (or half-open once passed)
        self.cooldown = 0.0
        self.probing = False

    @property
    def closed(self) -> bool:
        """Nothing to remember: no failure since the last success."""
        return self.failures == 0 and self.open_until == 0.0

    def open_for(self, now: float) -> float | None:
        """Seconds the circuit stays open (no side effect); None when it is not open."""
        if self.open_until == 0.0:
            return None
        remaining = self.open_until - now
        return remaining if remaining > 0 else None

    def blocked_for(self, now: float) -> float | None:
        """None: send (closed, or this is the half-open probe). Else seconds to park."""
        if self.open_until == 0.0:
            return None
        if now < self.open_until:
            return self.open_until - now
        if self.probing:
            return min(self.cooldown, 5.0)  # one probe at a time
        self.probing = True
        return None

    def record(self, outcome: Outcome, now: float) -> None:
        if outcome.verdict is Verdict.PARK:
            return
        if not counts_as_failure(outcome):
            self.failures, self.open_until, self.cooldown, self.probing = 0, 0.0, 0.0, False
            return
        self.failures += 1
        if self.probing or (self.open_until == 0.0 and self.failures >= self.policy.failures):
            self.cooldown = (min(self.cooldown * 2, self.policy.max_cooldown)
                             if self.probing else self.policy.cooldown)
            self.open_until = now + self.cooldown
            self.probing = False
