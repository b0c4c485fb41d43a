"""`hookd send`: one real request through the daemon's path, against real aiohttp servers
on 127.0.0.1 (run in a thread: the command runs its own event loop), its output and exit
status per verdict; what it refuses to do."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from hookd.cli import main
from hookd.cli.send import cmd_send, printable, verdict_of
from hookd.delivery.retries import classify_status
from hookd.errors import EX_CONFIG
from hookd.pipeline.runtime import load_config
from tests.unit.conftest import WriteConfig, dedent

KEY = "ak_live_5f4dcc3b5aa765d6"
SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TOKEN = "tok-7c1e9a4b2d6f8e0a"  # what the OAuth2 token endpoint gives
PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass
class Server:
    """An aiohttp app on 127.0.0.1 in a thread of its own; the requests it got."""

    port: int = 0
    got: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.got.append((request.path, {k.lower(): v for k, v in request.headers.items()},
                         body))
        if request.path == "/busy":
            return web.Response(status=503, text="busy, come back later",
                                headers={"Retry-After": "7"})
        if request.path == "/gone":
            return web.Response(status=410, text="this hook is gone")
        if request.path == "/bad":
            return web.Response(status=400, text="bad request")
        if request.path == "/token":
            return web.json_response({"access_token": TOKEN, "expires_in": 3600})
        if request.path == "/whoami":
            return web.Response(status=200, text=f"you sent {request.headers['Authorization']}",
                                headers={"X-Token": TOKEN})
        if request.path == "/big":
            return web.Response(status=200, text="x" * 5000)
        return web.Response(status=200, headers={"X-Answer": "yes"},
                            text=f'{{"ok": true, "key": "{request.headers.get("x-api-key")}"}}'
                                 "\x1b[2J")


@pytest.fixture
def server() -> Iterator[Server]:
    srv, loop = Server(), asyncio.new_event_loop()
    ready = threading.Event()
    runner = web.AppRunner(web.Application(), access_log=None, handle_signals=False)

    async def start() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", srv.handle)
        nonlocal runner
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        srv.port = int(runner.addresses[0][1])
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()),
                                              loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield srv
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 bound but not listening: a connection to it is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield int(sock.getsockname()[1])
    sock.close()


def config(write_config: WriteConfig, url: str, allow: bool = True) -> str:
    allowed = "delivery: {allow_networks: [127.0.0.0/8], timeout: 5s}\n" if allow else ""
    tree = write_config(allowed + dedent(f"""
        hooks:
          - id: crm
            event: Answered
            filter: {{queue_id: 7}}
            request: {{url: "{url}", headers: {{X-Call: "{{{{ call }}}}"}}}}
            auth: {{type: api_key, value: "{KEY}"}}
            signing: {{secret: "{SIGNING}"}}
            retry: {{schedule: [1s, 1m]}}
          - id: paused
            event: Answered
            enabled: false
            request: {{url: "{url}"}}
        """))
    return str(tree.main)


@pytest.fixture
def event_file(tmp_path: Path) -> str:
    path = tmp_path / "event.json"
    path.write_text('{"event": "Answered", "id": "e-1", "queue_id": 7, "call": "c-9"}')
    return str(path)


def send(capsys: pytest.CaptureFixture[str], cfg: str, event: str, *more: str
         ) -> tuple[int, str, str]:
    code = main(["send", "-c", cfg, "--hook", "crm", "--event", event, *more])
    out, err = capsys.readouterr()
    return code, out, err


def test_200_is_delivered(capsys: pytest.CaptureFixture[str], write_config: WriteConfig,
                          server: Server, event_file: str) -> None:
    code, out, err = send(capsys, config(write_config, f"http://127.0.0.1:{server.port}/ok"),
                          event_file, "--yes")
    print(out)
    assert (code, err) == (0, "")
    [(path, headers, body)] = server.got
    assert path == "/ok" and headers["x-call"] == "c-9"
    Webhook(SIGNING).verify(body, headers)  # signed as the daemon signs
    assert out.splitlines()[:2] == ["# hook crm", f"POST http://127.0.0.1:{server.port}/ok"]
    assert "x-api-key: ak_l…(redacted)" in out and KEY not in out  # masked, both ways
    assert "HTTP 200" in out and "X-Answer: yes" in out
    assert '{"ok": true, "key": "ak_l…(redacted)"}\\x1b[2J' in out  # no terminal escapes
    assert out.rstrip().endswith("verdict: delivered")


def test_503_would_retry(capsys: pytest.CaptureFixture[str], write_config: WriteConfig,
                         server: Server, event_file: str) -> None:
    code, out, err = send(capsys, config(write_config, f"http://127.0.0.1:{server.port}/busy"),
                          event_file, "--yes")
    print(out)
    assert (code, err) == (1, "")
    assert "HTTP 503" in out and "Retry-After: 7" in out and "busy, come back later" in out
    assert out.rstrip().endswith("verdict: would retry (the next attempt in about 7s as "
                                 "Retry-After asks)")


def test_refused_connection_would_retry(capsys: pytest.CaptureFixture[str],
                                        write_config: WriteConfig, closed_port: int,
                                        event_file: str) -> None:
    code, out, err = send(capsys, config(write_config, f"http://127.0.0.1:{closed_port}/x"),
                          event_file, "--yes")
    print(out)
    assert (code, err) == (1, "")
    assert "HTTP" not in out.split("\n\n", 1)[1]
    assert "no answer: connect: " in out and "refused" in out.lower()
    assert out.rstrip().endswith("verdict: would retry (the next attempt in about 1s)")


@pytest.mark.parametrize(("path", "verdict"), [
    ("/gone", "hook disabled by 410 (the daemon stops delivering to it until the next reload)"),
    ("/bad", "would fail (dead-lettered as error.kind=http_status)"),
])
def test_410_and_400_would_fail(capsys: pytest.CaptureFixture[str], write_config: WriteConfig,
                                server: Server, event_file: str, path: str,
                                verdict: str) -> None:
    code, out, _ = send(capsys, config(write_config, f"http://127.0.0.1:{server.port}{path}"),
                        event_file, "--yes")
    assert code == 2 and out.rstrip().endswith(f"verdict: {verdict}")


@pytest.mark.parametrize(("schedule", "retry_after", "verdict", "status"), [
    ((1.0, 60.0), None, "would retry (the next attempt in about 1s)", 1),
    ((1.0, 60.0), 30.0, "would retry (the next attempt in about 30s as Retry-After asks)", 1),
    ((), None, "would fail (no retry in the hook's schedule: dead-lettered as "
               "error.kind=http_status)", 2),
])
def test_the_verdict_follows_the_schedule(schedule: tuple[float, ...],
                                          retry_after: float | None, verdict: str,
                                          status: int) -> None:
    outcome = classify_status(503, retry_after, "HTTP 503")
    assert verdict_of(outcome, schedule) == (verdict, status)


def test_a_long_answer_is_cut_for_printing(capsys: pytest.CaptureFixture[str],
                                           write_config: WriteConfig, server: Server,
                                           event_file: str) -> None:
    code, out, _ = send(capsys, config(write_config, f"http://127.0.0.1:{server.port}/big"),
                        event_file, "--yes")
    assert code == 0 and "x" * 2048 + "\n(… 2952 more characters not shown)" in out


def test_the_ssrf_guard_applies(capsys: pytest.CaptureFixture[str], write_config: WriteConfig,
                                server: Server, event_file: str) -> None:
    code, out, _ = send(capsys, config(write_config, f"http://127.0.0.1:{server.port}/ok",
                                       allow=False), event_file, "--yes")
    assert code == 2 and server.got == []
    assert "no answer: blocked: " in out
    assert out.rstrip().endswith("verdict: would fail (dead-lettered as error.kind=blocked)")


def test_without_yes_and_no_terminal_nothing_is_sent(
        capsys: pytest.CaptureFixture[str], write_config: WriteConfig, server: Server,
        event_file: str) -> None:
    code, out, err = send(capsys, config(write_config, f"http://127.0.0.1:{server.port}/ok"),
                          event_file)
    assert code == 2 and server.got == []
    assert "# hook crm" in out  # the request is shown
    assert err == "not sent: no terminal to confirm on; add --yes to send it for real\n"


@pytest.mark.parametrize(("answer", "sent"), [("y", True), ("yes", True), ("n", False),
                                              ("", False)])
def test_asked_on_a_terminal(write_config: WriteConfig, server: Server, event_file: str,
                             answer: str, sent: bool) -> None:
    runtime = load_config(config(write_config, f"http://127.0.0.1:{server.port}/ok"))
    asked: list[str] = []
    out, err = io.StringIO(), io.StringIO()
    code = cmd_send(runtime, "crm", event_file, False, out, err,
                    lambda q: asked.append(q) or answer)
    assert asked == [f"send this request to http://127.0.0.1:{server.port}/ok for real? [y/N] "]
    assert (code, len(server.got)) == ((0, 1) if sent else (2, 0))


@pytest.mark.parametrize(("hook", "event", "message"), [
    ("nope", '{"event": "Answered", "queue_id": 7}', "no hook 'nope'\n"),
    ("paused", '{"event": "Answered", "queue_id": 7}',
     "hook paused is disabled (enabled: false): the daemon sends it nothing\n"),
    ("crm", '{"event": "Answered", "queue_id": 8}',
     "event 'Answered' does not match hook crm (its event or filter): the daemon would not "
     "send it\n"),
    ("crm", '{"event": "Answered", "queue_id": 7}', "crm: render error: "),
    ("crm", "[1]", "value is JSON list, not an object\n"),
])
def test_nothing_is_sent_for(capsys: pytest.CaptureFixture[str], write_config: WriteConfig,
                             server: Server, tmp_path: Path, hook: str, event: str,
                             message: str) -> None:
    path = tmp_path / "e.json"
    path.write_text(event)
    cfg = config(write_config, f"http://127.0.0.1:{server.port}/ok")
    code = main(["send", "-c", cfg, "--hook", hook, "--event", str(path), "--yes"])
    _, err = capsys.readouterr()
    assert code == 2 and server.got == []
    assert message in err


def test_a_bad_config_is_exit_78(capsys: pytest.CaptureFixture[str],
                                 write_config: WriteConfig, event_file: str) -> None:
    tree = write_config("hooks: [{id: a}]\n")
    code, _, err = send(capsys, str(tree.main), event_file, "--yes")
    assert code == EX_CONFIG and "hooks[0]" in err


def test_the_trace_context_of_the_event_file_is_sent(
        capsys: pytest.CaptureFixture[str], write_config: WriteConfig, server: Server,
        tmp_path: Path) -> None:
    path = tmp_path / "ce.json"
    path.write_text('{"specversion": "1.0", "type": "Answered", "id": "e", "source": "/x",'
                    f' "traceparent": "{PARENT}", "data": {{"queue_id": 7, "call": "c"}}}}')
    code, out, _ = send(capsys, config(write_config, f"http://127.0.0.1:{server.port}/ok"),
                        str(path), "--yes")
    assert code == 0 and f"traceparent: {PARENT}" in out
    assert server.got[0][1]["traceparent"] == PARENT


def test_an_oauth2_token_is_fetched_and_masked(capsys: pytest.CaptureFixture[str],
                                               write_config: WriteConfig, server: Server,
                                               event_file: str) -> None:
    base = f"http://127.0.0.1:{server.port}"
    tree = write_config(dedent(f"""
        delivery: {{allow_networks: [127.0.0.0/8]}}
        hooks:
          - id: crm
            event: Answered
            request: {{url: "{base}/whoami"}}
            auth: {{type: oauth2, token_url: "{base}/token", client_id: hookd,
                   client_secret: "cs_0123456789abcdef"}}
        """))
    code, out, _ = send(capsys, str(tree.main), event_file, "--yes")
    assert code == 0 and [p for p, _, _ in server.got] == ["/token", "/whoami"]
    assert server.got[1][1]["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in out and "cs_0123456789abcdef" not in out
    assert "X-Token: tok-…(redacted)" in out and "you sent Bearer tok-…(redacted)" in out


def test_printable_escapes_control_characters() -> None:
    assert printable("a\tb\nc") == "a\tb\nc"
    assert printable("\x1b[31mred\x07") == "\\x1b[31mred\\x07"
