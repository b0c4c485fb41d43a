"""What an attempt at an endpoint ends as: an answer, no answer, or nothing sent (its
circuit open, or it stalled). The decision itself (status → deliver, retry, fail) is
hookd.delivery.retries'; this maps what the HTTP client saw onto it."""

from __future__ import annotations

from hookd.delivery.connection import ProtocolError
from hookd.delivery.retries import (
    ErrorKind,
    Outcome,
    Verdict,
    classify_status,
    failure,
    parse_retry_after,
)
from hookd.delivery.wire import Response
from hookd.errors import BlockedDestination


def circuit_open(endpoint: str, wait: float, hook: str | None = None) -> Outcome:
    """Parked unsent: the host's circuit (`hook` None) or that hook's is open."""
    where = f"hook {hook} at {endpoint}" if hook is not None else f"host {endpoint}"
    return Outcome(Verdict.PARK, ErrorKind.CIRCUIT_OPEN, None, f"circuit open for {where}",
                   wait)


def stalled(endpoint: str, cooldown: float) -> Outcome:
    """All of its slots busy and no answer for `stall_after` (a black hole)."""
    return Outcome(Verdict.PARK, ErrorKind.TIMEOUT, None, f"{endpoint} is not answering",
                   cooldown)


def not_answered(exc: Exception, timeout: float) -> Outcome:
    """What a request that got no answer ends as (nothing sent, or nothing back)."""
    if isinstance(exc, BlockedDestination):
        return failure(ErrorKind.BLOCKED, str(exc))
    if isinstance(exc, TimeoutError):  # (an OSError: first)
        return failure(ErrorKind.TIMEOUT, f"no complete answer within {timeout:g}s")
    if isinstance(exc, (ProtocolError, OSError)):  # ssl.SSLError is an OSError
        return failure(ErrorKind.CONNECT, f"{type(exc).__name__}: {exc}"[:300])
    # ValueError: a header that would break the framing, or a bad URL: nothing sent
    return failure(ErrorKind.RENDER, f"invalid request: {exc}"[:300])


def answered(resp: Response) -> Outcome:
    if 200 <= resp.status < 300:
        return classify_status(resp.status)
    message = f"HTTP {resp.status}: {resp.body[:200].decode('utf-8', 'replace')}"
    return classify_status(resp.status, parse_retry_after(resp.retry_after), message)
