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
from hookd.delivery.tunnel import ProxyRefused
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
    if isinstance(exc, ProxyRefused):  # (a ProtocolError: first)
        return proxy_refused(exc)
    if isinstance(exc, TimeoutError):  # (an OSError: first)
        return failure(ErrorKind.TIMEOUT, f"no complete answer within {timeout:g}s")
    if isinstance(exc, (ProtocolError, OSError)):  # ssl.SSLError is an OSError
        return failure(ErrorKind.CONNECT, f"{type(exc).__name__}: {exc}"[:300])
    # ValueError: a header that would break the framing, or a bad URL: nothing sent
    return failure(ErrorKind.RENDER, f"invalid request: {exc}"[:300])


_PROXY_SAYS = {
    401: "the proxy refused the credentials in the proxy URL",  # (tinyproxy, to wrong ones)
    407: "the proxy wants other credentials (the user and password in the proxy URL)",
    403: "the proxy's rules do not allow this destination (its ACL, or its CONNECT ports)",
    502: "the proxy could not reach the endpoint",
    503: "the proxy could not reach the endpoint",
    504: "the proxy got no answer from the endpoint in time",
}


def proxy_refused(exc: ProxyRefused) -> Outcome:
    """A proxy's refusal of a CONNECT tunnel, which the endpoint never saw (no status:
    the proxy's is in the message): a 5xx (the proxy could not reach the endpoint) is
    retried as a connection error, and counts against the endpoint's circuit; 407 and 401
    (credentials), 403 (the proxy's rules) and other 4xx fail at once, as a request an
    endpoint refused with a 4xx does: sending again changes nothing until the config or
    the proxy's rules do."""
    why = _PROXY_SAYS.get(exc.status)
    message = f"{exc}" + (f": {why}" if why else "")
    if exc.status >= 500:
        return failure(ErrorKind.CONNECT, message[:300])
    return Outcome(Verdict.FAIL, ErrorKind.CONNECT, None, message[:300])


def answered(resp: Response) -> Outcome:
    if 200 <= resp.status < 300:
        return classify_status(resp.status)
    message = f"HTTP {resp.status}: {resp.body[:200].decode('utf-8', 'replace')}"
    if resp.status == 407:  # only a proxy says it: no endpoint sent this
        message = f"HTTP 407 from the proxy: {_PROXY_SAYS[407]}"
    return classify_status(resp.status, parse_retry_after(resp.retry_after), message)
