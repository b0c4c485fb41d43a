"""hookd.delivery.circuit: one endpoint's breaker, step by step (a table of outcomes and times)."""

from __future__ import annotations

import pytest

from hookd.delivery.circuit import Circuit, CircuitPolicy, counts_as_failure
from hookd.delivery.retries import ErrorKind, Outcome, Verdict, classify_status, failure

DOWN = failure(ErrorKind.CONNECT, "refused")
OK = classify_status(200)
POLICY = CircuitPolicy(failures=3, cooldown=10.0, max_cooldown=25.0)


@pytest.mark.parametrize(("outcome", "counts"), [
    (DOWN, True),
    (failure(ErrorKind.TIMEOUT, "slow"), True),
    (classify_status(503, None, "HTTP 503"), True),
    (classify_status(429, None, "HTTP 429"), True),
    (classify_status(404, None, "HTTP 404"), False),  # the request's fault, not the host's
    (classify_status(408, None, "HTTP 408"), False),
    (OK, False),
    (Outcome(Verdict.PARK, ErrorKind.CONNECT, None, "circuit open", 5.0), False),
])
def test_what_counts_as_endpoint_trouble(outcome: Outcome, counts: bool) -> None:
    assert counts_as_failure(outcome) is counts


def test_opens_after_n_failures_probes_once_and_doubles_its_cooldown() -> None:
    c = Circuit(POLICY)
    assert c.closed and c.blocked_for(0.0) is None
    for t in (1.0, 2.0):
        c.record(DOWN, t)
    assert c.open_for(2.0) is None and c.blocked_for(2.0) is None  # 2 of 3: closed
    c.record(DOWN, 3.0)
    assert c.open_for(3.0) == 10.0 and c.blocked_for(8.0) == 5.0  # open until 13
    assert c.blocked_for(13.0) is None  # half-open: this one is the probe
    assert c.blocked_for(13.0) == 5.0  # one probe at a time
    c.record(DOWN, 14.0)  # the probe failed: open again, twice as long
    assert c.open_for(14.0) == 20.0
    assert c.blocked_for(34.0) is None
    c.record(DOWN, 34.0)
    assert c.open_for(34.0) == 25.0  # capped at max_cooldown
    assert c.blocked_for(59.0) is None
    c.record(OK, 59.5)  # the probe succeeded: closed, nothing remembered
    assert c.closed and c.open_for(60.0) is None and c.blocked_for(60.0) is None


def test_a_success_resets_the_count_and_a_park_counts_for_nothing() -> None:
    c = Circuit(POLICY)
    c.record(DOWN, 0.0)
    c.record(DOWN, 0.0)
    c.record(OK, 0.0)
    c.record(DOWN, 0.0)
    c.record(Outcome(Verdict.PARK, ErrorKind.CONNECT, None, "parked", 5.0), 0.0)
    c.record(DOWN, 0.0)
    assert c.open_for(0.0) is None and not c.closed  # 2 in a row since the success
