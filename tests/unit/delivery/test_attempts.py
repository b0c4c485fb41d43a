"""hookd.delivery.attempts.Attempts: one attempt of a delivery, with test_dispatch's fake
Sender (which also records what each send carried), a real TokenCache whose token endpoint
is a function of the test, a fake clock for hookd.delivery.attempts and structlog's
capture of the delivery line."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

import orjson
import pytest
import structlog

from hookd.config import OAuth2Auth, Rate
from hookd.delivery.attempts import Attempts, Job, Line, to_ms
from hookd.delivery.retries import ErrorKind, Outcome, Verdict, classify_status, failure
from hookd.errors import BlockedDestination
from hookd.events.decode import decode_event, make_meta
from hookd.pipeline.runtime import Runtime, load_config
from hookd.requests.oauth import TokenCache
from hookd.requests.proxy import Route
from hookd.requests.render import CompiledHook, Request
from hookd.requests.signing import Signer
from hookd.telemetry.hookstats import HookStats
from hookd.telemetry.lines import Lines
from hookd.telemetry.logs import configure_logging
from tests.unit.conftest import WriteConfig
from tests.unit.pipeline.test_dispatch import OK, FakeSender, Respond, record
from tests.unit.telemetry.test_logs import restore_logging  # noqa: F401 (autouse)

CONFIG = """
hooks:
  - id: plain
    event: Answered
    request: {url: "http://127.0.0.1/plain"}
  - id: oauth
    event: Answered
    auth: {type: oauth2, token_url: "http://127.0.0.1/token", client_id: cid,
           client_secret: cs-000}
    request: {url: "http://127.0.0.1/oauth"}
  - id: limited
    event: Answered
    rate_limit: 2/h
    request: {url: "http://127.0.0.1/limited"}
"""

Captured = list[MutableMapping[str, Any]]  # structlog.testing.capture_logs's lines
UNAUTHORIZED = classify_status(401, message="HTTP 401: expired token")
CIRCUIT_OPEN = Outcome(Verdict.PARK, ErrorKind.CONNECT, None,
                       "circuit open for http://127.0.0.1:80", 30.0)


@dataclass(frozen=True)
class Sent:
    request: Request
    signer: Signer | None
    timeout: float
    extra_headers: dict[str, str] | None


class RecordingSender(FakeSender):
    """test_dispatch's FakeSender (answers through `respond`, per call), also keeping what
    each send carried: the request and the headers added to it."""

    def __init__(self, respond: Respond | None = None) -> None:
        super().__init__(respond)
        self.sent: list[Sent] = []

    async def attempt(self, request: Request, signer: Signer | None, timeout: float,
                      tls: ssl.SSLContext | None = None,
                      extra_headers: Mapping[str, str] | None = None,
                      proxy: Route | None = None) -> Outcome:
        self.sent.append(Sent(request, signer, timeout,
                              None if extra_headers is None else dict(extra_headers)))
        return await super().attempt(request, signer, timeout, tls, extra_headers)

    def authorizations(self) -> list[str | None]:
        return [(s.extra_headers or {}).get("authorization") for s in self.sent]


class TokenEndpoint:
    """The PostForm of a real TokenCache: hands out tok-1, tok-2, ... or raises `error`,
    or answers `status` without a token; nothing leaves the process."""

    def __init__(self, error: Exception | None = None, status: int = 200) -> None:
        self.error, self.status = error, status
        self.posts: list[tuple[str, dict[str, str], tuple[str, str]]] = []
        self.proxies: list[Route | None] = []

    async def __call__(self, url: str, form: dict[str, str], basic: tuple[str, str],
                       timeout: float, proxy: Route | None = None) -> tuple[int, Any]:
        self.posts.append((url, form, basic))
        self.proxies.append(proxy)
        if self.error is not None:
            raise self.error
        if self.status != 200:
            return self.status, None
        return 200, {"access_token": f"tok-{len(self.posts)}", "expires_in": 3600}


class FakeClock:
    """hookd.delivery.attempts' `time`: a wall clock that stands still unless moved, and a monotonic
    clock that steps `step` seconds at every reading."""

    def __init__(self, now: float = 1_700_000_000.0, step: float = 0.0125) -> None:
        self.now, self.step, self.mono = now, step, 100.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        self.mono += self.step
        return self.mono


@pytest.fixture
def runtime(write_config: WriteConfig) -> Runtime:
    return load_config(write_config(CONFIG).main, environ={})


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr("hookd.delivery.attempts.time", fake)
    return fake


@pytest.fixture
def captured() -> Iterator[Captured]:
    """Every line logged, as structlog.testing.capture_logs gives them (from structlog's
    defaults, so that no level filter left by another test hides a line)."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    try:
        with structlog.testing.capture_logs() as logs:
            yield logs
    finally:
        structlog.configure(**saved)


def hook_of(runtime: Runtime, hook_id: str) -> CompiledHook:
    hook = runtime.hook(hook_id)
    assert hook is not None
    return hook


def job_for(hook: CompiledHook, seq: int = 0) -> tuple[Job, Request]:
    rec = record(seq, "Answered")
    event = decode_event(rec.value, make_meta(rec.topic, rec.partition, rec.offset, rec.key,
                                              rec.timestamp, rec.headers))
    return Job(hook.id, event, rec.key), hook.render(event)


def context_of(request: Request) -> dict[str, Any]:
    """What leads each line of the delivery of `job_for`'s event by `request`, and its
    event's name (captured as `_event`)."""
    return {"hook": request.hook_id, "webhook_id": request.webhook_id, "url": request.url,
            "topic": "cc.events", "partition": 0, "offset": 0, "_event": "Answered"}


def oauth_auth(hook: CompiledHook) -> OAuth2Auth:
    assert isinstance(hook.config.auth, OAuth2Auth)
    return hook.config.auth


# --------------------------------------------------------------------- a plain send

async def test_a_plain_send_adds_no_auth_and_logs_one_delivered_line(
        runtime: Runtime, clock: FakeClock, captured: Captured) -> None:
    hook = hook_of(runtime, "plain")
    sender, endpoint = RecordingSender(), TokenEndpoint()
    attempts = Attempts(sender, TokenCache(endpoint))  # a cache, unused by a plain hook
    job, request = job_for(hook)
    outcome = await attempts.attempt(job, hook, request, 1)
    assert outcome is OK
    assert sender.sent == [Sent(request, hook.signer, hook.timeout, None)]
    assert "authorization" not in dict(request.headers)
    assert endpoint.posts == []
    assert request.url == "http://127.0.0.1/plain"
    assert captured == [{"event": "delivery", "log_level": "info", **context_of(request),
                         "outcome": "delivered", "status": 200, "attempt": 1,
                         "duration_ms": 12.5}]


async def test_first_attempt_at_is_set_by_the_first_attempt_only(
        runtime: Runtime, clock: FakeClock, captured: Captured) -> None:
    hook = hook_of(runtime, "plain")
    sender = RecordingSender(lambda call: classify_status(503) if call.attempt == 1 else OK)
    attempts = Attempts(sender)
    job, request = job_for(hook)
    assert job.first_attempt_at is None
    await attempts.attempt(job, hook, request, 1)
    assert job.first_attempt_at == clock.now
    first, clock.now = clock.now, clock.now + 60.0
    assert (await attempts.attempt(job, hook, request, 2)).ok
    assert job.first_attempt_at == first
    assert [(line["outcome"], line["attempt"]) for line in captured] == [
        ("failed", 1), ("delivered", 2)]


@pytest.mark.parametrize("timed", [True, False], ids=["metrics-on", "metrics-off"])
async def test_an_attempt_answered_2xx_counts_its_delivery_a_failed_one_does_not(
        runtime: Runtime, clock: FakeClock, captured: Captured, timed: bool) -> None:
    """The delivered count and its lag are counted where the 2xx is recorded (the callers
    count nothing); attempts by class and their durations only with /metrics on."""
    hook = hook_of(runtime, "plain")
    stats = HookStats([hook.id])
    sender = RecordingSender(lambda call: classify_status(503) if call.attempt == 1 else OK)
    attempts = Attempts(sender, stats=stats, timed=timed)
    job, request = job_for(hook)
    assert job.event.meta.timestamp is not None
    clock.now = job.event.meta.timestamp / 1000 + 3.0
    await attempts.attempt(job, hook, request, 1)
    stat = stats.of(hook.id)
    assert (stat.delivered, stats.lag.count, stat.last_error) == (0, 0, "503")
    assert (await attempts.attempt(job, hook, request, 2)).ok
    assert stat.delivered == 1 and stat.last_error == "503"
    assert stats.lag.count == 1 and stats.lag.sum == pytest.approx(3.0)
    assert stat.attempts == ([0, 0, 1, 0, 0, 1] if timed else [0] * 6)
    assert stat.duration.count == (2 if timed else 0)
    assert stat.duration.sum == pytest.approx(0.025 if timed else 0.0)


async def test_the_delivered_line_is_the_one_its_context_writes(
        runtime: Runtime, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    """The common way's line, written from the job's event and the request without a
    context, is the JSON line the delivery's `Line` (its context, off the common way)
    writes: the same keys, in the same order, the same values."""
    configure_logging("info", "json")  # (undone by test_logs' restore_logging)
    hook = hook_of(runtime, "plain")
    lines = Lines(structlog.get_logger("hookd.test").bind())
    job, request = job_for(hook)
    assert (await Attempts(RecordingSender(), lines=lines).attempt(job, hook, request, 2)).ok
    Line.of(lines, job, hook.id, request.webhook_id, request.url).info(
        "delivery", outcome="delivered", status=200, attempt=2, duration_ms=12.5)
    await asyncio.sleep(0)  # (the loop's lines are written at the end of its iteration)
    ours, theirs = (orjson.loads(line) for line in capsys.readouterr().out.splitlines())
    assert ours.pop("timestamp") == "2023-11-14T22:13:20.000000Z"  # the attempt's `now`
    theirs.pop("timestamp")
    assert list(ours.items()) == list(theirs.items())


async def test_without_lines_an_attempt_writes_none(
        runtime: Runtime, clock: FakeClock, captured: Captured) -> None:
    """`hookd send` prints what happened itself."""
    hook = hook_of(runtime, "plain")
    sender = RecordingSender(lambda call: classify_status(503) if call.attempt == 1 else OK)
    attempts = Attempts(sender, lines=None)
    job, request = job_for(hook)
    assert not (await attempts.attempt(job, hook, request, 1)).ok
    assert (await attempts.attempt(job, hook, request, 2)).ok
    assert captured == []


def test_a_hook_that_waits_is_known_at_load_and_only_it_is_asked_about(
        runtime: Runtime) -> None:
    """`CompiledHook.waits`: a rate limit or an OAuth2 token (then `plain` decides, with
    or without a token cache); every other hook is plain without asking."""
    plain, oauth, limited = (hook_of(runtime, h) for h in ("plain", "oauth", "limited"))
    assert (plain.waits, oauth.waits, limited.waits) == (False, True, True)
    with_tokens, without = Attempts(RecordingSender(), TokenCache(TokenEndpoint())), \
        Attempts(RecordingSender())
    assert [a.plain(h) for a in (with_tokens, without) for h in (plain, oauth, limited)] == [
        True, False, False, True, True, False]
    unlimited = replace(limited, config=limited.config.model_copy(update={"rate_limit": None}))
    assert not unlimited.waits and with_tokens.plain(unlimited)


# --------------------------------------------------------------------- a failed attempt

@pytest.mark.parametrize(("outcome", "retryable"), [
    pytest.param(classify_status(503, message="HTTP 503: busy"), True, id="503-retried"),
    pytest.param(failure(ErrorKind.TIMEOUT, "no complete answer within 10s"), True,
                 id="timeout-retried"),
    pytest.param(classify_status(404, message="HTTP 404: no such thing"), False, id="404-final"),
    pytest.param(classify_status(410, message="HTTP 410: gone"), False, id="410-final"),
    pytest.param(failure(ErrorKind.BLOCKED, "10.0.0.1 is not allowed"), False,
                 id="blocked-final"),
])
async def test_a_failed_attempt_is_a_warning_line(
        runtime: Runtime, clock: FakeClock, captured: Captured,
        outcome: Outcome, retryable: bool) -> None:
    hook = hook_of(runtime, "plain")
    attempts = Attempts(RecordingSender(lambda call: outcome))
    job, request = job_for(hook)
    assert await attempts.attempt(job, hook, request, 3) is outcome
    assert captured == [{"event": "delivery", "log_level": "warning", **context_of(request),
                         "outcome": "failed", "retryable": retryable,
                         "status": outcome.status, "attempt": 3, "duration_ms": 12.5,
                         "error_kind": str(outcome.kind), "error": outcome.message}]
    assert job.first_attempt_at == clock.now


# --------------------------------------------------------------------- circuit open

async def test_a_park_outcome_is_not_an_attempt(
        runtime: Runtime, clock: FakeClock, captured: Captured) -> None:
    hook = hook_of(runtime, "plain")
    sender = RecordingSender(lambda call: CIRCUIT_OPEN)
    job, request = job_for(hook)
    outcome = await Attempts(sender).attempt(job, hook, request, 1)
    assert outcome is CIRCUIT_OPEN
    assert len(sender.sent) == 1  # asked; the sender itself sent nothing
    assert captured == []
    assert job.first_attempt_at is None


# --------------------------------------------------------------------- OAuth2

async def test_oauth2_sends_the_token_as_a_bearer_header(
        runtime: Runtime, clock: FakeClock, captured: Captured) -> None:
    hook = hook_of(runtime, "oauth")
    sender, endpoint = RecordingSender(), TokenEndpoint()
    job, request = job_for(hook)
    outcome = await Attempts(sender, TokenCache(endpoint)).attempt(job, hook, request, 1)
    assert outcome is OK
    assert [s.extra_headers for s in sender.sent] == [{"authorization": "Bearer tok-1"}]
    assert endpoint.posts == [("http://127.0.0.1/token", {"grant_type": "client_credentials"},
                               ("cid", "cs-000"))]
    assert [line["outcome"] for line in captured] == ["delivered"]


async def test_oauth2_401_refreshes_the_token_and_sends_once_more(
        runtime: Runtime, clock: FakeClock, captured: Captured) -> None:
    hook = hook_of(runtime, "oauth")
    sender = RecordingSender(lambda call: UNAUTHORIZED if call.attempt == 1 else OK)
    endpoint = TokenEndpoint()
    tokens = TokenCache(endpoint)
    job, request = job_for(hook)
    outcome = await Attempts(sender, tokens).attempt(job, hook, request, 1)
    assert outcome is OK
    assert sender.authorizations() == ["Bearer tok-1", "Bearer tok-2"]
    assert len(endpoint.posts) == 2
    assert await tokens.token(oauth_auth(hook)) == "tok-2"  # the fresh one is kept
    assert [(line["outcome"], line["status"]) for line in captured] == [("delivered", 200)]


async def test_oauth2_a_second_401_is_returned_as_it_is(
        runtime: Runtime, clock: FakeClock, captured: Captured) -> None:
    hook = hook_of(runtime, "oauth")
    sender = RecordingSender(lambda call: UNAUTHORIZED if call.attempt <= 2 else OK)
    job, request = job_for(hook)
    outcome = await Attempts(sender, TokenCache(TokenEndpoint())).attempt(
        job, hook, request, 1)
    assert outcome is UNAUTHORIZED
    assert sender.authorizations() == ["Bearer tok-1", "Bearer tok-2"]  # no third send
    assert [(line["outcome"], line["status"], line["retryable"]) for line in captured] == [
        ("failed", 401, False)]


async def test_oauth2_token_blocked_by_the_ssrf_guard_fails_at_once(
        runtime: Runtime, clock: FakeClock, captured: Captured) -> None:
    hook = hook_of(runtime, "oauth")
    sender = RecordingSender()
    endpoint = TokenEndpoint(BlockedDestination("10.0.0.1 is not an allowed destination"))
    job, request = job_for(hook)
    outcome = await Attempts(sender, TokenCache(endpoint)).attempt(job, hook, request, 1)
    assert outcome == failure(ErrorKind.BLOCKED,
                              "oauth2 token: 10.0.0.1 is not an allowed destination")
    assert outcome.verdict is Verdict.FAIL
    assert sender.sent == []
    assert [line["error_kind"] for line in captured] == ["blocked"]


@pytest.mark.parametrize(("endpoint", "message"), [
    pytest.param(TokenEndpoint(status=500), "TokenError: token endpoint answered 500",
                 id="token-error"),
    pytest.param(TokenEndpoint(ConnectionRefusedError("refused")),
                 "ConnectionRefusedError: refused", id="refused"),
    pytest.param(TokenEndpoint(TimeoutError("no answer")), "TimeoutError: no answer",
                 id="timeout"),
])
async def test_oauth2_token_fetch_failing_otherwise_is_a_connect_failure(
        runtime: Runtime, clock: FakeClock, captured: Captured,
        endpoint: TokenEndpoint, message: str) -> None:
    hook = hook_of(runtime, "oauth")
    sender = RecordingSender()
    job, request = job_for(hook)
    outcome = await Attempts(sender, TokenCache(endpoint)).attempt(job, hook, request, 1)
    assert outcome == failure(ErrorKind.CONNECT, f"oauth2 token: {message}")
    assert outcome.verdict is Verdict.RETRY
    assert sender.sent == []
    assert [line["error_kind"] for line in captured] == ["connect"]


# --------------------------------------------------------------------- rate limit

async def test_a_rate_limited_hook_gets_a_limiter_every_attempt_passes_through(
        runtime: Runtime, clock: FakeClock, captured: Captured) -> None:
    attempts = Attempts(RecordingSender())
    plain = hook_of(runtime, "plain")
    job, request = job_for(plain)
    await attempts.attempt(job, plain, request, 1)
    assert attempts._limiters == {}  # no rate_limit, no limiter
    hook = hook_of(runtime, "limited")
    job, request = job_for(hook)
    await attempts.attempt(job, hook, request, 1)
    rate, limiter = attempts._limiters["limited"]
    assert (rate, limiter.max_rate, limiter.time_period) == ("2/h", 2.0, 3600.0)
    assert limiter.has_capacity()  # one of two taken
    await attempts.attempt(job, hook, request, 2)
    assert attempts._limiters["limited"][1] is limiter  # the same rate: the same limiter
    assert not limiter.has_capacity()  # both taken: a third attempt would wait


async def test_a_changed_rate_replaces_the_hooks_limiter(
        runtime: Runtime, clock: FakeClock, captured: Captured) -> None:
    sender = RecordingSender()
    attempts = Attempts(sender)
    hook = hook_of(runtime, "limited")
    job, request = job_for(hook)
    for n in (1, 2):  # the 2/h limiter is full
        await attempts.attempt(job, hook, request, n)
    old = attempts._limiters["limited"][1]
    reloaded = replace(hook, config=hook.config.model_copy(update={"rate_limit": Rate("5/h")}))
    # under the old limiter this attempt would wait half an hour: the timeout only keeps
    # such a failure from hanging the run
    outcome = await asyncio.wait_for(
        attempts.attempt(job, reloaded, request, 3), 5.0)
    assert outcome is OK
    rate, limiter = attempts._limiters["limited"]
    assert limiter is not old
    assert (rate, limiter.max_rate, limiter.time_period) == ("5/h", 5.0, 3600.0)
    assert limiter.has_capacity(4) and not limiter.has_capacity(5)  # one of five taken
    assert len(sender.sent) == 3


async def test_oauth2_token_echoed_by_the_endpoint_is_masked(
        runtime: Runtime, clock: FakeClock, captured: Captured) -> None:
    """An error page repeating the Authorization header: the token is not in the log."""
    hook = hook_of(runtime, "oauth")
    echo = classify_status(500, message="HTTP 500: denied Bearer tok-1")
    sender = RecordingSender(lambda call: echo)
    job, request = job_for(hook)
    outcome = await Attempts(sender, TokenCache(TokenEndpoint())).attempt(
        job, hook, request, 1)
    assert (outcome.status, outcome.message) == (500, "HTTP 500: denied Bearer ***")
    assert [line["error"] for line in captured] == ["HTTP 500: denied Bearer ***"]


@pytest.mark.parametrize(("seconds", "ms"), [
    (0.0, 0.0), (0.00004, 0.0), (0.00005, 0.1), (0.0123456, 12.3), (0.01235, 12.4),
    (1.99996, 2000.0), (30.0, 30000.0), (0.03125, 31.3),  # an exact tie: up (round(): 31.2)
])
def test_a_duration_is_in_milliseconds_to_a_tenth(seconds: float, ms: float) -> None:
    assert to_ms(seconds) == ms


def test_a_duration_in_milliseconds_is_what_round_gives_but_at_exact_ties() -> None:
    import random
    rng = random.Random(7)
    for _ in range(200_000):
        seconds = rng.random() * rng.choice([0.001, 0.1, 10.0, 600.0])
        assert to_ms(seconds) == round(seconds * 1000, 1), seconds
