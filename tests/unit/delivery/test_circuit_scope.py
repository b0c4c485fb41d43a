"""Circuit scope follows the cause, through HttpSender against a real server on 127.0.0.1:
answers that fail (5xx, 429) open the hook's own circuit only; no answer at all opens the
host's, for every hook on it; any answer proves the host is up."""

from __future__ import annotations

from hookd.delivery.retries import ErrorKind, Verdict
from hookd.delivery.sender import HttpSender
from hookd.requests.render import Request
from hookd.requests.target import target_of
from tests.unit.delivery.test_sender import SenderFactory, Server, closed_port, request

BREAKER = {"failures": 3, "cooldown": "200ms", "max_cooldown": "1s"}


def as_hook(hook: str, url: str) -> Request:
    return request(url)._replace(hook_id=hook)


async def _send(sender: HttpSender, hook: str, url: str) -> tuple[Verdict, int | None, str]:
    out = await sender.attempt(as_hook(hook, url), None, 2.0)
    return out.verdict, out.status, str(out.kind)


async def test_a_failing_path_opens_its_hook_circuit_only(
        server: Server, make_sender: SenderFactory) -> None:
    sender = await make_sender(circuit_breaker=BREAKER)
    endpoint = target_of(server.url("/busy")).endpoint
    for _ in range(3):
        assert (await _send(sender, "down", server.url("/busy")))[:2] == (Verdict.RETRY, 503)
    closed = sender.unavailable(endpoint, "down")
    assert closed is not None and closed.verdict is Verdict.PARK
    assert closed.kind is ErrorKind.CIRCUIT_OPEN
    assert closed.message == f"circuit open for hook down at {endpoint}"
    assert sender.unavailable(endpoint, "ok") is None and sender.unavailable(endpoint) is None
    assert (await _send(sender, "ok", server.url("/ok")))[:2] == (Verdict.DELIVERED, 200)
    parked = await _send(sender, "down", server.url("/busy"))  # nothing sent: parked
    assert parked == (Verdict.PARK, None, "circuit_open")
    assert len(server.at("/busy")) == 3
    assert sender.endpoints.open_circuits() == [
        {"endpoint": endpoint, "scope": "hook", "hook": "down", "next_probe_in_s": 0.2}]


async def test_no_answer_opens_the_host_circuit_for_every_hook(
        make_sender: SenderFactory) -> None:
    sender = await make_sender(circuit_breaker=BREAKER)
    url = f"http://127.0.0.1:{closed_port()}/x"
    endpoint = target_of(url).endpoint
    for hook in ("a", "b", "a"):
        assert (await _send(sender, hook, url))[::2] == (Verdict.RETRY, "connect")
    for hook in ("a", "b", "c", None):
        closed = sender.unavailable(endpoint, hook)
        assert closed is not None and closed.message == f"circuit open for host {endpoint}"
    (circuit,) = sender.endpoints.open_circuits()
    assert (circuit["scope"], circuit["endpoint"]) == ("host", endpoint)


async def test_any_answer_proves_the_host_is_up(
        server: Server, make_sender: SenderFactory) -> None:
    sender = await make_sender(circuit_breaker=BREAKER)
    endpoint = sender.endpoints.get(target_of(server.url()).endpoint)
    endpoint.circuit.failures = 2  # two connection failures in a row, say
    assert (await _send(sender, "h", server.url("/missing")))[:2] == (Verdict.FAIL, 404)
    assert endpoint.circuit.closed  # a 404 is an answer: the host is up
    assert "h" not in endpoint.hooks  # and a 404 is not the hook's handler failing


async def test_a_hook_circuit_probes_once_and_closes_on_success(
        server: Server, make_sender: SenderFactory) -> None:
    sender = await make_sender(circuit_breaker={**BREAKER, "cooldown": "50ms"})
    endpoint = sender.endpoints.get(target_of(server.url()).endpoint)
    for _ in range(3):
        await _send(sender, "h", server.url("/busy"))
    assert "h" in endpoint.hooks and endpoint.hooks["h"].open_until
    endpoint.hooks["h"].open_until -= 1.0  # the cooldown is over: half-open
    assert (await _send(sender, "h", server.url("/ok")))[:2] == (Verdict.DELIVERED, 200)
    assert endpoint.hooks == {} and sender.endpoints.open_circuits() == []
