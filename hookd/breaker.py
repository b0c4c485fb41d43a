"""Circuit breakers, one per endpoint: park deliveries instead of hammering a dead one."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from hookd.retries import ErrorKind, Outcome, Verdict


@dataclass
class _Circuit:
    failures: int = 0
    open_until: float = 0.0  # > 0: open (or half-open once passed)
    cooldown: float = 0.0
    probing: bool = False


def counts_as_failure(outcome: Outcome) -> bool:
    """Endpoint trouble, not the request's fault: timeouts, connection errors, 5xx, 429."""
    if outcome.verdict is not Verdict.RETRY:
        return False
    return outcome.kind in (ErrorKind.TIMEOUT, ErrorKind.CONNECT) or (
        outcome.status is not None and (outcome.status >= 500 or outcome.status == 429))


class Breakers:
    """Closed → (N failures in a row) → open for a cooldown → half-open: one probe →
    closed on success, open again with a doubled cooldown on failure."""

    def __init__(self, failures: int = 5, cooldown: float = 30.0, max_cooldown: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold, self.cooldown, self.max_cooldown = failures, cooldown, max_cooldown
        self.clock = clock
        self._circuits: dict[str, _Circuit] = {}

    def open_for(self, endpoint: str) -> float | None:
        """Seconds the circuit stays open (no side effect); None when it is not open."""
        circuit = self._circuits.get(endpoint)
        if circuit is None or circuit.open_until == 0.0:
            return None
        remaining = circuit.open_until - self.clock()
        return remaining if remaining > 0 else None

    def blocked_for(self, endpoint: str) -> float | None:
        """None: send (closed, or this is the half-open probe). Else seconds to park."""
        circuit = self._circuits.get(endpoint)
        if circuit is None or circuit.open_until == 0.0:
            return None
        now = self.clock()
        if now < circuit.open_until:
            return circuit.open_until - now
        if circuit.probing:
            return min(circuit.cooldown, 5.0)  # one probe at a time
        circuit.probing = True
        return None

    def record(self, endpoint: str, outcome: Outcome) -> None:
        if outcome.verdict is Verdict.PARK:
            return
        circuit = self._circuits.get(endpoint)
        if not counts_as_failure(outcome):
            if circuit is not None:
                del self._circuits[endpoint]  # closed: healthy endpoints cost nothing
            return
        if circuit is None:
            circuit = self._circuits[endpoint] = _Circuit()
        circuit.failures += 1
        if circuit.probing or (circuit.open_until == 0.0 and circuit.failures >= self.threshold):
            circuit.cooldown = (min(circuit.cooldown * 2, self.max_cooldown)
                                if circuit.probing else self.cooldown)
            circuit.open_until = self.clock() + circuit.cooldown
            circuit.probing = False

    def open_circuits(self) -> dict[str, float]:
        """Endpoint → seconds until the next probe (0: half-open now)."""
        now = self.clock()
        return {e: round(max(0.0, c.open_until - now), 1)
                for e, c in self._circuits.items() if c.open_until}
