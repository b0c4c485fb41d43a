"""Nothing let in: the SSRF guard, template injection, header injection, secrets, and the
health server, against a running daemon (real broker, real HTTP servers on 127.0.0.1).

Loopback (127.0.0.1, localhost, ::1) is the forbidden destination here: no other address
is ever used."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from aiohttp import web

from hookd.telemetry.redact import url_forms
from tests.integration.harness import (
    DaemonProcess,
    free_port,
    get_json,
    hook,
    new_topic,
    produce,
    read_topic,
    running,
    unique,
    until,
    wait_process_ready,
    wait_ready,
    write_config,
)
from tests.integration.receiver import Receiver, serve

PARTS = 2
BLOCK_ALL = {"allow_networks": [], "timeout": "2s", "retry": {"schedule": ["50ms"]}}
LOOPBACK_OK = {"allow_networks": ["127.0.0.0/8"], "timeout": "2s",
               "retry": {"schedule": ["50ms"], "jitter": 0.0}}


def _letters(records: list[Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Dead letters by (hook, event id)."""
    out = {}
    for record in records:
        rec = orjson.loads(record.value)
        out[(rec["hook"], rec["event_id"])] = rec
    assert len(out) == len(records), "one dead letter per delivery"
    return out


# ------------------------------------------------------------------------------ SSRF


def _ssrf_hooks(port: int) -> list[dict[str, Any]]:
    return [
        hook("literal", "Literal", f"http://127.0.0.1:{port}/literal"),
        hook("name", "Name", f"http://localhost:{port}/name"),
        hook("v6", "V6", f"http://[::1]:{port}/v6"),
        hook("templated", "Templated", f"http://{{{{ host }}}}:{port}/templated"),
    ]


_SSRF_EVENTS = [(b"k", {"event": "Literal", "id": "lit"}),
                (b"k", {"event": "Name", "id": "name"}),
                (b"k", {"event": "V6", "id": "v6"}),
                (b"a", {"event": "Templated", "id": "t-ip", "host": "127.0.0.1"}),
                (b"b", {"event": "Templated", "id": "t-name", "host": "localhost"}),
                (b"c", {"event": "Templated", "id": "t-v6", "host": "[::1]"})]


async def test_ssrf_guard_refuses_loopback_by_address_by_name_and_from_event_data(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    topic, dlq = await new_topic(broker.bootstrap, PARTS, "sec"), unique("dlq")
    cfg = write_config(tmp_path, broker.bootstrap, topic, _ssrf_hooks(receiver.port), dlq=dlq,
                       delivery=BLOCK_ALL)
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        await produce(broker.bootstrap, topic, _SSRF_EVENTS)
        letters = _letters(await read_topic(broker.bootstrap, dlq, len(_SSRF_EVENTS)))
        counters = daemon.dispatcher.counters  # type: ignore[union-attr]
    assert receiver.arrivals == 0 and receiver.requests == []
    assert set(letters) == {("literal", "lit"), ("name", "name"), ("v6", "v6"),
                            ("templated", "t-ip"), ("templated", "t-name"),
                            ("templated", "t-v6")}
    for (hook_id, event_id), rec in letters.items():
        assert rec["error"]["kind"] == "blocked", (hook_id, event_id, rec["error"])
        assert "not allowed" in rec["error"]["message"]
        assert rec["attempts"] == 1, "a refused destination fails at once, not retried"
    assert "127.0.0.1" in letters[("literal", "lit")]["error"]["message"]
    assert "localhost" in letters[("name", "name")]["error"]["message"]
    assert counters.delivered == 0 and counters.dead_lettered == len(_SSRF_EVENTS)


async def test_ssrf_control_the_same_hooks_deliver_when_127_0_0_1_is_allowed(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    """The refusals above are the guard's doing: allow 127.0.0.1/32 (only) and the same
    hooks reach the receiver, except ::1, which stays outside the allowed network."""
    topic, dlq = await new_topic(broker.bootstrap, PARTS, "sec"), unique("dlq")
    delivery = {**BLOCK_ALL, "allow_networks": ["127.0.0.1/32"]}
    cfg = write_config(tmp_path, broker.bootstrap, topic, _ssrf_hooks(receiver.port), dlq=dlq,
                       delivery=delivery)
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        await produce(broker.bootstrap, topic, _SSRF_EVENTS)
        letters = _letters(await read_topic(broker.bootstrap, dlq, 2))
        await receiver.wait_for(4)
        await until(lambda: daemon.dispatcher.counters.delivered == 4)  # type: ignore[union-attr]
    assert sorted(r.path for r in receiver.requests) == ["/literal", "/name", "/templated",
                                                         "/templated"]
    assert set(letters) == {("v6", "v6"), ("templated", "t-v6")}
    assert {rec["error"]["kind"] for rec in letters.values()} == {"blocked"}


async def test_ssrf_guard_tightened_by_reload_applies_to_the_next_attempt(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    topic, dlq = await new_topic(broker.bootstrap, PARTS, "sec"), unique("dlq")
    port = receiver.port
    hooks = [hook("literal", "Literal", f"http://127.0.0.1:{port}/literal"),
             hook("name", "Name", f"http://localhost:{port}/name")]
    cfg = write_config(tmp_path, broker.bootstrap, topic, hooks, dlq=dlq,
                       delivery={**BLOCK_ALL, "allow_networks": ["127.0.0.0/8"]})
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        await produce(broker.bootstrap, topic, [(b"k", {"event": "Literal", "id": "1"}),
                                                (b"k", {"event": "Name", "id": "2"})])
        await receiver.wait_for(2)  # allowed: delivered, keep-alive connections pooled
        data = yaml.safe_load(cfg.read_text())
        data["delivery"]["allow_networks"] = []
        cfg.write_text(yaml.safe_dump(data, sort_keys=False))
        daemon.request_reload()
        await until(lambda: daemon.runtime.generation == 2)
        await produce(broker.bootstrap, topic, [(b"k", {"event": "Literal", "id": "3"}),
                                                (b"k", {"event": "Name", "id": "4"})])
        letters = _letters(await read_topic(broker.bootstrap, dlq, 2, timeout=5))
    assert receiver.arrivals == 2
    assert {k: v["error"]["kind"] for k, v in letters.items()} == {
        ("literal", "3"): "blocked", ("name", "4"): "blocked"}


async def test_ssrf_guard_refuses_an_oauth2_token_url_on_loopback(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    topic, dlq = await new_topic(broker.bootstrap, PARTS, "sec"), unique("dlq")
    cfg = write_config(tmp_path, broker.bootstrap, topic, [hook(
        "o", "Answered", receiver.url("/api"),
        auth={"type": "oauth2", "token_url": receiver.url("/oauth/token"),
              "client_id": "hookd", "client_secret": "s3cret-value"})],
        dlq=dlq, delivery={**BLOCK_ALL, "retry": {"schedule": ["50ms", "50ms"]}})
    async with running(cfg):
        await produce(broker.bootstrap, topic, [(b"k", {"event": "Answered", "id": "o1"})])
        [letter] = await read_topic(broker.bootstrap, dlq, 1)
    rec = orjson.loads(letter.value)
    assert receiver.arrivals == 0  # the token endpoint on 127.0.0.1 was never contacted
    assert rec["error"]["kind"] == "blocked" and rec["attempts"] == 1, rec["error"]


# ------------------------------------------------------------------ template injection

SSTI = {"a": "{{ 7*7 }}", "b": "{% raw %}", "c": "${env:HOME}",
        "d": "{{ ''.__class__.__mro__ }}", "e": "${a}", "f": "{# c #}{%- if 1 %}x{% endif %}"}


async def test_template_syntax_in_event_fields_arrives_literally(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    topic = await new_topic(broker.bootstrap, PARTS, "sec")
    fields = sorted(SSTI)
    body = "{" + ", ".join(f'"{k}": {{{{ {k}|tojson }}}}' for k in fields) + "}"
    raw_body = "{" + ", ".join(f'"{k}": "${{{k}}}"' for k in fields) + "}"
    hooks = [
        hook("jinja", "Data", receiver.url("/jinja/{{ a }}"),
             request={"body": body, "headers": {f"X-{k}": f"{{{{ {k} }}}}" for k in fields},
                      "query": {k: f"{{{{ {k} }}}}" for k in fields}}),
        hook("text", "Data", receiver.url("/text"),
             request={"body": " | ".join(f"{{{{ {k} }}}}" for k in fields),
                      "content_type": "text/plain"}),
        hook("raw", "Data", receiver.url("/raw"), request={"raw_body": raw_body}),
        hook("fields", "Data", receiver.url("/fields"), request={"fields": fields}),
        hook("get", "Data", receiver.url("/get"), request={"method": "GET", "fields": fields}),
    ]
    cfg = write_config(tmp_path, broker.bootstrap, topic, hooks)
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        await produce(broker.bootstrap, topic, [(b"k", {"event": "Data", "id": "d1", **SSTI})])
        await receiver.wait_for(len(hooks))
        assert daemon.dispatcher.counters.dead_lettered == 0  # type: ignore[union-attr]

    [jinja] = [r for r in receiver.requests if r.path.startswith("/jinja/")]
    assert jinja.path == "/jinja/" + SSTI["a"]
    assert orjson.loads(jinja.body) == SSTI
    assert {k: jinja.headers[f"x-{k}"] for k in fields} == SSTI
    assert jinja.query == SSTI
    [text] = receiver.at("/text")
    assert text.body.decode() == " | ".join(SSTI[k] for k in fields)
    [raw] = receiver.at("/raw")
    assert orjson.loads(raw.body) == SSTI  # `${a}` inside a value is not substituted again
    [by_fields] = receiver.at("/fields")
    assert orjson.loads(by_fields.body) == SSTI
    [get] = receiver.at("/get")
    assert get.query == SSTI
    home = os.environ.get("HOME", "/root")
    for req in receiver.requests:  # nothing evaluated, nothing expanded
        assert b"49" not in req.body and b"<class" not in req.body
        assert home.encode() not in req.body


_EVIL = "{{ ''.__class__.__mro__[1].__subclasses__() }}"


async def test_template_escapes_and_header_injection_are_render_errors_nothing_sent(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    topic, dlq = await new_topic(broker.bootstrap, PARTS, "sec"), unique("dlq")
    hooks = [
        hook("evil-body", "Evil", receiver.url("/evil-body"),
             request={"body": _EVIL, "content_type": "text/plain"}),
        hook("evil-header", "Evil", receiver.url("/evil-header"),
             request={"headers": {"X-Evil": _EVIL}}),
        hook("evil-url", "Evil", receiver.url("/evil-url/{{ cycler.__init__.__globals__ }}")),
        hook("evil-query", "Evil", receiver.url("/evil-query"),
             request={"query": {"q": "{{ payload.__class__.__base__.__subclasses__() }}"}}),
        hook("crlf", "Crlf", receiver.url("/crlf"),
             request={"headers": {"X-Agent": "{{ agent_name }}"}}),
        hook("crlf-kafka-header", "CrlfMeta", receiver.url("/crlf-meta"),
             request={"headers": {"X-Trace": "{{ meta.headers.traceparent }}"}}),
        # URL and query from event data: CR/LF end up as data (percent-encoded)
        hook("crlf-url", "Crlf", receiver.url("/crlf-url/{{ agent_name }}"),
             request={"query": {"agent": "{{ agent_name }}"}}),
    ]
    cfg = write_config(tmp_path, broker.bootstrap, topic, hooks, dlq=dlq)
    injections = ["x\r\nX-Injected: 1", "x\nX-Injected: 1", "x\rX-Injected: 1"]
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        await produce(broker.bootstrap, topic, [(b"e", {"event": "Evil", "id": "evil"})] + [
            (f"c{i}".encode(), {"event": "Crlf", "id": f"crlf{i}", "agent_name": value})
            for i, value in enumerate(injections)])
        await produce(broker.bootstrap, topic, [(b"m", {"event": "CrlfMeta", "id": "meta"})],
                      headers=[("traceparent", b"00-abc\r\nX-Injected: 1")])
        letters = _letters(await read_topic(broker.bootstrap, dlq, 4 + 3 + 1))
        await receiver.wait_for(len(injections))
    for hook_id in ("evil-body", "evil-header", "evil-url", "evil-query"):
        rec = letters[(hook_id, "evil")]
        assert rec["error"]["kind"] == "render", rec
        assert "unsafe" in rec["error"]["message"], rec["error"]["message"]
    for i in range(len(injections)):
        rec = letters[("crlf", f"crlf{i}")]
        assert rec["error"] == {"kind": "render", "status": None,
                                "message": "header x-agent: value contains CR, LF or NUL"}
    assert letters[("crlf-kafka-header", "meta")]["error"]["kind"] == "render"
    # nothing reached the receiver but the URL/query hook, and never with an injected header
    assert len(receiver.requests) == receiver.arrivals == len(injections)
    for req in receiver.requests:
        assert req.path.startswith("/crlf-url/")
        assert "x-injected" not in req.headers
        assert "\r" not in req.raw_path and "\n" not in req.raw_path
        assert req.path.removeprefix("/crlf-url/") in injections  # encoded: still data
        assert req.query["agent"] in injections


# ------------------------------------------------------------------------------ secrets


class EchoServer:
    """Answers every delivery with an error that echoes what it was sent (as servers do
    in their error pages), and the token endpoint with a 401 echoing the client secret."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> EchoServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner, self.port = await serve(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.seen.append((request.path, headers))
        auth = headers.get("authorization", "")
        decoded = ""
        if auth.startswith("Basic "):
            decoded = base64.b64decode(auth[6:]).decode()
        if request.path == "/oauth/token":
            return web.Response(status=401, text=f"bad client credentials {decoded}")
        if request.path == "/gone":
            return web.Response(status=410, text=f"gone {request.path_qs}")
        echoed = " ".join(v for v in (auth, decoded, headers.get("x-api-key", ""),
                                      headers.get("x-env", ""), request.query_string) if v)
        return web.Response(status=500, text=f"denied: {echoed}")


def _secret(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = await EchoServer().start()
    yield server
    await server.stop()


def _secret_config(tmp_path: Path, broker: Any, topic: str, dlq: str, echo: EchoServer,
                   values: dict[str, str], health_port: int = 0) -> Path:
    """Hooks whose failures echo every kind of secret back (see EchoServer)."""
    (tmp_path / "secrets").mkdir(parents=True, exist_ok=True)
    (tmp_path / "secrets" / "basic.txt").write_text(values["basic_password"] + "\n")
    hooks = [
        hook("bearer", "Answered", echo.url("/bearer"),
             auth={"type": "bearer", "token": "${env:HOOKD_T_BEARER}"}),
        hook("api-key", "Answered", echo.url("/api-key"),
             auth={"type": "api_key", "value": values["api_key"]}),  # a literal: masked too
        hook("basic", "Answered", echo.url("/basic"),
             auth={"type": "basic", "username": "hookd",
                   "password": "${file:secrets/basic.txt}"}),
        hook("env", "Answered", echo.url("/env?token=${env:HOOKD_T_URL_TOKEN}"),
             request={"headers": {"X-Env": "${env:HOOKD_T_HEADER}"}}),
        hook("signed", "Answered", echo.url("/signed"),
             signing={"secret": values["signing"]}),
        hook("oauth", "Answered", echo.url("/oauth-api"),
             auth={"type": "oauth2", "token_url": echo.url("/oauth/token"),
                   "client_id": "hookd", "client_secret": "${env:HOOKD_T_CLIENT_SECRET}"}),
        hook("gone", "Answered", echo.url("/gone?token=${env:HOOKD_T_URL_TOKEN}")),
        # a query value is percent-encoded: the secret stands in the URL as t=a%2Bb%2F...
        hook("query", "Answered", echo.url("/query"),
             request={"query": {"t": "${env:HOOKD_T_QUERY_TOKEN}"}}),
        # renders an ftp:// URL: the render error quotes the URL, token and all
        hook("bad-url", "Answered",
             "{{ scheme }}://127.0.0.1:" + str(echo.port) + "/x?token=${env:HOOKD_T_URL_TOKEN}"),
    ]
    return write_config(tmp_path, broker.bootstrap, topic, hooks, dlq=dlq,
                        health_port=health_port, delivery=LOOPBACK_OK,
                        logging={"level": "debug", "format": "json"})


def _secret_values() -> dict[str, str]:
    return {"bearer": _secret("bearer"), "api_key": _secret("apikey"),
            "basic_password": _secret("basicpw"), "url_token": _secret("urltoken"),
            "header": _secret("hdr"), "client_secret": _secret("oauth"),
            "query_token": "qt+" + base64.b64encode(secrets.token_bytes(12)).decode() + "/=",
            "signing": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()}


def _environ(values: dict[str, str]) -> dict[str, str]:
    return {"HOOKD_T_BEARER": values["bearer"], "HOOKD_T_URL_TOKEN": values["url_token"],
            "HOOKD_T_HEADER": values["header"], "HOOKD_T_CLIENT_SECRET": values["client_secret"],
            "HOOKD_T_QUERY_TOKEN": values["query_token"]}


def _forbidden(values: dict[str, str]) -> dict[str, str]:
    """Every string that must not appear, including the Basic header's base64, and each
    also percent-encoded (as it stands in a URL)."""
    basic = base64.b64encode(f"hookd:{values['basic_password']}".encode()).decode()
    client = base64.b64encode(f"hookd:{values['client_secret']}".encode()).decode()
    plain = {**values, "basic_b64": basic, "oauth_basic_b64": client}
    return {f"{name} as {form!r}": form for name, value in plain.items()
            for form in url_forms(value)}


def _leaks(text: str, forbidden: dict[str, str]) -> list[str]:
    return [name for name, value in forbidden.items() if value in text]


async def test_secrets_never_appear_in_logs_health_or_check(
        broker: Any, echo: EchoServer, tmp_path: Path) -> None:
    topic, dlq = await new_topic(broker.bootstrap, PARTS, "sec"), unique("dlq")
    values = _secret_values()
    forbidden = _forbidden(values)
    health_port = free_port()
    cfg = _secret_config(tmp_path, broker, topic, dlq, echo, values, health_port)
    env = _environ(values)
    proc = DaemonProcess(cfg, env).start()
    try:
        await wait_process_ready(health_port)
        await produce(broker.bootstrap, topic, [(b"k", {"event": "Answered", "id": "s1",
                                                        "scheme": "ftp"})])
        letters = _letters(await read_topic(broker.bootstrap, dlq, 9, timeout=30))
        bodies = {}
        for path in ("/healthz", "/readyz"):
            async with aiohttp.ClientSession() as session, session.get(
                    f"http://127.0.0.1:{health_port}{path}") as resp:
                bodies[path] = (resp.status, await resp.text())
        proc.signal(signal.SIGTERM)
        assert await proc.wait() == 0
    finally:
        proc.stop_now()
    check = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "hookd", "check", "-c", str(cfg)],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=30)
    event_file = tmp_path / "event.json"
    event_file.write_text('{"event": "Answered", "id": "s1", "scheme": "http"}')
    renders = [await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "hookd", "render", "-c", str(cfg), "--event",
                         str(event_file), *flags],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=30)
        for flags in ([], ["--json"], ["--show-secrets"])]

    # the failures happened, and their messages were the echoing kind
    assert set(letters) == {(h, "s1") for h in ("bearer", "api-key", "basic", "env", "signed",
                                                "oauth", "gone", "bad-url", "query")}
    assert letters[("bad-url", "s1")]["error"]["kind"] == "render"
    assert letters[("gone", "s1")]["error"]["status"] == 410
    assert any(p == "/oauth/token" for p, _ in echo.seen)
    seen_auth = {p: h.get("authorization") for p, h in echo.seen}
    assert seen_auth["/bearer"] == f"Bearer {values['bearer']}"  # the secret was really sent

    log = proc.log.read_text(errors="replace")
    lines = proc.lines()
    assert _leaks(log, forbidden) == [], "secrets in the daemon's log"
    failed = [line for line in lines if line.get("msg") == "delivery"
              and line.get("outcome") == "dead_lettered"]
    assert {line["hook"] for line in failed} == {h for h, _ in letters}
    errors = " ".join(str(line.get("error")) for line in lines)
    assert "denied: Bearer ***" in errors  # the echo was logged, masked
    assert "token=***" in errors or "token=***" in log

    for path, (status, body) in bodies.items():
        assert status == 200, (path, body)
        assert _leaks(body, forbidden) == [], f"secrets in {path}"
    ready = orjson.loads(bodies["/readyz"][1])
    assert "gone" in ready["disabled_hooks"]
    assert "token=***" in ready["disabled_hooks"]["gone"]

    assert check.returncode == 0, check.stderr
    assert _leaks(check.stdout + check.stderr, forbidden) == [], "secrets in hookd check"
    assert "token=***" in check.stdout

    text, as_json, shown = renders
    assert [r.returncode for r in renders] == [0, 0, 0], [r.stderr for r in renders]
    assert _leaks(text.stdout + text.stderr, forbidden) == [], "secrets in hookd render"
    assert _leaks(as_json.stdout + as_json.stderr, forbidden) == [], "in hookd render --json"
    assert f"x-api-key: {values['api_key'][:4]}…(redacted)" in text.stdout
    assert f"x-api-key: {values['api_key']}" in shown.stdout  # --show-secrets: as sent
    assert len(as_json.stdout.splitlines()) == 9


async def test_secrets_are_masked_in_dead_letter_messages(
        broker: Any, echo: EchoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    topic, dlq = await new_topic(broker.bootstrap, PARTS, "sec"), unique("dlq")
    values = _secret_values()
    for name, value in _environ(values).items():
        monkeypatch.setenv(name, value)
    cfg = _secret_config(tmp_path, broker, topic, dlq, echo, values)
    async with running(cfg):
        await produce(broker.bootstrap, topic, [(b"k", {"event": "Answered", "id": "s2",
                                                        "scheme": "ftp"})])
        records = await read_topic(broker.bootstrap, dlq, 9, timeout=30)
    letters = _letters(records)
    assert len(letters) == 9
    leaks = {hook_id: _leaks(rec["error"]["message"], _forbidden(values))
             for (hook_id, _), rec in letters.items()}
    assert leaks == {hook_id: [] for hook_id, _ in letters}


# ------------------------------------------------------------------------ health server


async def _raw_http(port: int, request: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
        return int(status_line.split()[1])
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def test_health_server_serves_nothing_else(
        broker: Any, receiver: Receiver, tmp_path: Path) -> None:
    topic = await new_topic(broker.bootstrap, PARTS, "sec")
    cfg = write_config(tmp_path, broker.bootstrap, topic,
                       [hook("h", "Answered", receiver.url("/h"))])
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        port = daemon.health.port  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        got: dict[tuple[str, str], int] = {}
        async with aiohttp.ClientSession() as session:
            for path in ("/", "/metrics/", "/debug", "/readyz/", "/healthz/x", "/readyz.json",
                         "/READYZ", "/METRICS", "/config", "/hookd.yaml", "/static/x", "/.env"):
                async with session.get(base + path) as resp:
                    got[("GET", path)] = resp.status
            for method in ("POST", "PUT", "DELETE", "PATCH"):
                for path in ("/readyz", "/healthz", "/metrics"):
                    async with session.request(method, base + path, data=b"{}") as resp:
                        got[(method, path)] = resp.status
            for path in ("/readyz", "/healthz", "/metrics"):
                async with session.get(base + path) as resp:
                    got[("GET", path)] = resp.status
        traversal = await _raw_http(port, b"GET /../../../etc/passwd HTTP/1.1\r\n"
                                          b"Host: x\r\nConnection: close\r\n\r\n")
        encoded = await _raw_http(port, b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n"
                                        b"Host: x\r\nConnection: close\r\n\r\n")
        status, body = await get_json(base + "/readyz")
    for (method, path), code in got.items():
        if path in ("/readyz", "/healthz", "/metrics"):
            assert code == (200 if method == "GET" else 405), (method, path, code)
        else:
            assert code == 404, (method, path, code)
    assert traversal in (400, 404) and encoded in (400, 404)
    assert status == 200 and body["status"] == "ready"
