"""Circuit breakers: park deliveries instead of hammering what is failing.

Two scopes, by what a failure says. No answer at all (connection refused or reset, DNS,
TLS handshake, a connect or read timeout) says the *host* is in trouble: it counts for the
host's circuit (`scheme://host:port`), which parks every hook on it. An HTTP answer, any
status, proves the host is up: it closes the host's circuit, and a 5xx or 429 counts for
the *hook's* own circuit (hook id + endpoint) only, so one broken path on a shared CRM or
PBX host never stalls the hooks on its other paths.

Each: closed → (N failures in a row) → open for a cooldown → half-open: one probe →
closed on success, open again with a doubled cooldown (up to max_cooldown) on failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hookd.delivery.retries import ErrorKind, Outcome, Verdict


def host_trouble(outcome: Outcome) -> bool:
    """No answer from the host: a timeout or a connection error (not the request's fault)."""
    return outcome.verdict is Verdict.RETRY and outcome.status is None and outcome.kind in (
        ErrorKind.TIMEOUT, ErrorKind.CONNECT)


def hook_trouble(outcome: Outcome) -> bool:
    """An answer that says this hook's handler is failing or throttled: 5xx, 429."""
    return outcome.verdict is Verdict.RETRY and outcome.status is not None and (
        outcome.status >= 500 or outcome.status == 429)


def counts_as_failure(outcome: Outcome) -> bool:
    """Trouble of either scope."""
    return host_trouble(outcome) or hook_trouble(outcome)


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
        """An outcome as one circuit of both scopes would see it (tests, tools)."""
        if outcome.verdict is not Verdict.PARK:
            self.result(counts_as_failure(outcome), now)

    def unprobe(self) -> None:
        """The probe let through was not sent, or its outcome says nothing of this scope:
        the next request may probe."""
        self.probing = False

    def result(self, failed: bool, now: float) -> None:
        """A success closes the circuit; a failure counts, and opens it at N in a row (or
        again at once, after a failed probe)."""
        if not failed:
            self.failures, self.open_until, self.cooldown, self.probing = 0, 0.0, 0.0, False
            return
        self.failures += 1
        if self.probing or (self.open_until == 0.0 and self.failures >= self.policy.failures):
            self.cooldown = (min(self.cooldown * 2, self.policy.max_cooldown)
                             if self.probing else self.policy.cooldown)
            self.open_until = now + self.cooldown
            self.probing = False


# -- one endpoint's circuits: the host's, and one per hook whose answers are failing -------
def told(host: Circuit, hooks: dict[str, Circuit], hook: str, outcome: Outcome,
         now: float) -> None:
    """An attempt's outcome, as `hook` at an endpoint made it: an answer, any status,
    proves the host is up; a 5xx or 429 counts against the hook's own circuit only (made
    when it first fails, dropped once closed: a healthy hook costs nothing). No answer
    counts against the host's."""
    own = hooks.get(hook)
    if outcome.status is not None:
        host.result(False, now)
        failed = hook_trouble(outcome)
        if failed and own is None:
            own = hooks[hook] = Circuit(host.policy)
        if own is not None:
            own.result(failed, now)
            if own.closed:
                del hooks[hook]
    elif host_trouble(outcome):
        host.result(True, now)
        if own is not None:
            own.unprobe()  # its probe never reached the hook: let the next one try
    else:  # nothing sent, or refused before sending (blocked, a bad request)
        unprobe(host, hooks, hook)


def probing(host: Circuit, hooks: Mapping[str, Circuit], hook: str) -> bool:
    """A probe of the host's circuit or the hook's is out (asked right after `blocked_for`
    let a request through: then it is that request)."""
    own = hooks.get(hook)
    return host.probing or (own is not None and own.probing)


def unprobe(host: Circuit, hooks: Mapping[str, Circuit], hook: str) -> None:
    """The request let through will say nothing (not sent, or its probe cancelled): the
    next one may probe."""
    host.unprobe()
    own = hooks.get(hook)
    if own is not None:
        own.unprobe()


def open_circuits(endpoint: str, host: Circuit, hooks: Mapping[str, Circuit], now: float,
                  ) -> list[dict[str, object]]:
    """An endpoint's open circuits, as `hookd status` and /metrics show them."""
    out: list[dict[str, object]] = []
    if host.open_until:
        out.append({"endpoint": endpoint, "scope": "host",
                    "next_probe_in_s": round(max(0.0, host.open_until - now), 1)})
    for hook, circuit in hooks.items():
        if circuit.open_until:
            out.append({"endpoint": endpoint, "scope": "hook", "hook": hook,
                        "next_probe_in_s": round(max(0.0, circuit.open_until - now), 1)})
    return out
