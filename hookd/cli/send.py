"""`hookd send`: render, sign and really send one hook's request for an event, the way the
daemon would, and print the answer and the verdict the daemon would reach.

The request goes through the daemon's own path: `Attempts` (rate limit, the OAuth2
token, a 401 refreshing it once) → `HttpSender` (the SSRF guard, the hook's TLS, its
timeout, `delivery.max_response_bytes`) → `Endpoint.attempt` (signing with a fresh
timestamp) → `retries` (the verdict). Only the connections differ: they keep the whole
answer, headers included (`hookd.delivery.recording`), for printing.

Exit status: 0 delivered; 1 the daemon would retry (5xx, 408, 425, 429, no answer);
2 it would fail (dead-letter), the hook would be disabled by a 410, or nothing was sent
(no such hook, the event does not match it, a render error, not confirmed); 78 the
config is invalid.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from hookd.config import OAuth2Auth
from hookd.delivery.attempts import Attempts, Job
from hookd.delivery.recording import Answer, Recorder
from hookd.delivery.retries import Outcome, Verdict, next_delay
from hookd.delivery.sender import HttpSender
from hookd.errors import EX_CONFIG, DecodeError, RenderError
from hookd.events.decode import Event, decode_event, make_meta
from hookd.pipeline.runtime import Runtime
from hookd.requests.oauth import TokenCache
from hookd.requests.render import CompiledHook, Request
from hookd.telemetry.redact import Redactor

DELIVERED, WOULD_RETRY, WOULD_FAIL = 0, 1, 2  # exit statuses
BODY_SHOWN = 2048  # characters of the answer's body printed

Ask = Callable[[str], str]  # shows a question, returns the answer (input() on a terminal)


def printable(text: str) -> str:
    """What an endpoint sent, safe for a terminal: control characters (escape sequences)
    written as escapes; newlines and tabs kept."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in text)


def verdict_of(outcome: Outcome, schedule: Sequence[float]) -> tuple[str, int]:
    """The verdict line and the exit status; `schedule`: the hook's retry delays."""
    v = outcome.verdict
    if v is Verdict.DELIVERED:
        return "delivered", DELIVERED
    if v is Verdict.GONE:
        return ("hook disabled by 410 (the daemon stops delivering to it until the next "
                "reload)"), WOULD_FAIL
    if v is Verdict.FAIL:
        return f"would fail (dead-lettered as error.kind={outcome.kind})", WOULD_FAIL
    delay = next_delay(schedule, 1, outcome.retry_after, jitter=0)
    if delay is None:  # a schedule of no retries: the first failure is the last
        return (f"would fail (no retry in the hook's schedule: dead-lettered as "
                f"error.kind={outcome.kind})"), WOULD_FAIL
    asks = " as Retry-After asks" if outcome.retry_after and outcome.retry_after >= delay \
        else ""
    return f"would retry (the next attempt in about {delay:g}s{asks})", WOULD_RETRY


def _event(runtime: Runtime, event_file: str) -> Event:
    raw = Path(event_file).read_bytes()
    return decode_event(raw, make_meta("send", 0, 0, None, None, None),
                        runtime.config.events.name_field)


def _show_request(hook: CompiledHook, request: Request, mask: Redactor, out: TextIO) -> None:
    headers = dict(request.headers)
    headers["webhook-timestamp"] = "<when sent>"
    if hook.signer is not None:
        headers["webhook-signature"] = "<signed when sent, with that timestamp>"
    if isinstance(hook.config.auth, OAuth2Auth):
        headers["authorization"] = "Bearer <token from oauth2 token_url at send time>"
    print(f"# hook {hook.id}", file=out)
    print(f"{request.method} {mask(request.url)}", file=out)
    for name, value in headers.items():
        print(f"{name}: {mask(value)}", file=out)
    body = mask(request.body.decode("utf-8", errors="replace"))
    print(f"\n{body}\n" if body else "", file=out)


def _show_answer(answer: Answer, mask: Callable[[str], str], out: TextIO) -> None:
    print(f"HTTP {answer.status}", file=out)
    for name, value in answer.headers:
        print(printable(f"{name}: {mask(value)}"), file=out)
    text = answer.body.decode("utf-8", errors="replace")
    if text:
        print("\n" + printable(mask(text[:BODY_SHOWN])), file=out)
    if len(text) > BODY_SHOWN:
        print(f"(… {len(text) - BODY_SHOWN} more characters not shown)", file=out)
    if answer.truncated:
        print("(the body was cut at delivery.max_response_bytes, as the daemon reads it)",
              file=out)


async def send_one(runtime: Runtime, hook: CompiledHook, event: Event, request: Request
                   ) -> tuple[Outcome, Answer | None, str | None]:
    """One attempt as the daemon makes it: (outcome, the answer when there was one, the
    OAuth2 token it used, to be masked)."""
    recorder = Recorder()
    sender = HttpSender(runtime.config.delivery, protocol=recorder.connection)
    tokens = TokenCache(sender.post_form)
    # no log line: what it would say is printed below, plainly
    attempts = Attempts(sender, tokens, timed=False, lines=None)
    try:
        outcome = await attempts.attempt(Job(hook.id, event, None), hook, request, 1)
        token = None
        if isinstance(hook.config.auth, OAuth2Auth) and outcome.status is not None:
            token = await tokens.token(hook.config.auth, hook.timeout)  # the cached one
    finally:
        await sender.close()
    # the delivery is the last request made (a token's comes before it): its answer is
    # the last one, when it got an answer at all
    return outcome, recorder.last if outcome.status is not None else None, token


def cmd_send(runtime: Runtime | None, hook_id: str, event_file: str, yes: bool,
             out: TextIO, err: TextIO, ask: Ask | None) -> int:
    """`ask` None: no terminal to confirm on (then only --yes sends)."""
    if runtime is None:
        return EX_CONFIG
    hook = runtime.hook(hook_id)
    if hook is None:
        print(f"no hook {hook_id!r}", file=err)
        return WOULD_FAIL
    try:
        event = _event(runtime, event_file)
    except (OSError, DecodeError) as exc:
        print(f"{event_file}: {exc}", file=err)
        return WOULD_FAIL
    if not hook.config.enabled:
        print(f"hook {hook.id} is disabled (enabled: false): the daemon sends it nothing",
              file=err)
        return WOULD_FAIL
    if all(h.id != hook.id for h in runtime.index.match(event.name, event.payload)):
        print(f"event {event.name!r} does not match hook {hook.id} (its event or filter): "
              "the daemon would not send it", file=err)
        return WOULD_FAIL
    mask = Redactor(runtime.secrets, keep=4)
    try:
        request = hook.render(event)
    except RenderError as exc:
        print(f"{hook.id}: render error: {mask(str(exc))}", file=err)
        print("verdict: would fail (dead-lettered as error.kind=render)", file=out)
        return WOULD_FAIL
    _show_request(hook, request, mask, out)
    if not yes:
        if ask is None:
            print("not sent: no terminal to confirm on; add --yes to send it for real",
                  file=err)
            return WOULD_FAIL
        if ask(f"send this request to {mask(request.url)} for real? [y/N] ").strip().lower() \
                not in ("y", "yes"):
            print("not sent", file=err)
            return WOULD_FAIL
    outcome, answer, token = asyncio.run(send_one(runtime, hook, event, request))
    shown: Callable[[str], str] = mask
    if token:
        shown = Redactor([*runtime.secrets, token], keep=4)
    if answer is not None:
        _show_answer(answer, shown, out)
    else:
        print(f"no answer: {outcome.kind}: {printable(shown(outcome.message))}", file=out)
    line, status = verdict_of(outcome, hook.schedule)
    print(f"\nverdict: {line}", file=out)
    return status
