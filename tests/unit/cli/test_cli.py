"""The `hookd` command line, called in-process: check, render, schema."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from standardwebhooks.webhooks import Webhook

from hookd import USER_AGENT
from hookd.cli import main
from hookd.errors import EX_CONFIG
from tests.unit.conftest import EXAMPLES, SAMPLE_CONFIG, SECRETS, WriteConfig


def secret(name: str) -> str:
    return (SECRETS / name).read_text().strip()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------- check


def test_check_sample_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", "-c", str(SAMPLE_CONFIG))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "EVENT", "METHOD", "URL", "ENABLED"]
    assert lines[-1] == "ok: 10 hook(s) from 5 file(s)"
    rows = [line.split() for line in lines[1:-1]]
    assert [r[0] for r in rows] == [
        "crm-answered", "queue-lifecycle", "abandoned-long-wait", "dialer-member-end",
        "call-ringing-popup", "call-reporting-prod", "ivr-journey", "svc-abandoned",
        "svc-outbound", "svc-workitem-closed"]
    assert rows[4] == ["call-ringing-popup", "Call:Ringing", "GET", "http://127.0.0.1:9900/popup",
                       "yes"]
    assert rows[0][1:3] == ["Answered,Active", "POST"]
    assert rows[9][2] == "PUT"
    assert all(r[-1] == "yes" for r in rows)
    url_column = lines[0].index("URL")
    assert all(line[url_column:].startswith("http://127.0.0.1:9900/") for line in lines[1:-1])


def test_check_output_holds_no_secret(capsys: pytest.CaptureFixture[str]) -> None:
    values = [p.read_text().strip() for p in SECRETS.iterdir() if p.name != "README"]
    assert len(values) == 6 and all(len(v) >= 8 for v in values)
    _, out, err = run(capsys, "check", "-c", str(SAMPLE_CONFIG))
    for value in values:
        assert value not in out + err


def test_check_masks_secrets_in_urls(capsys: pytest.CaptureFixture[str],
                                     write_config: WriteConfig,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKD_TEST_URL_TOKEN", "url-token-9f8e7d")
    tree = write_config("""
        hooks:
          - id: a
            event: X
            enabled: false
            request:
              url: "https://user:pa55word@crm.example.com/in/${env:HOOKD_TEST_URL_TOKEN}"
        """)
    code, out, _ = run(capsys, "check", "-c", str(tree.main))
    assert code == 0
    assert "url-token-9f8e7d" not in out and "pa55word" not in out
    assert out.splitlines()[1].split() == ["a", "X", "POST", "https://***@crm.example.com/in/***",
                                           "no"]


def test_check_broken_config_prints_every_error(capsys: pytest.CaptureFixture[str],
                                                write_config: WriteConfig) -> None:
    tree = write_config("""
        bogus: 1
        hooks:
          - id: a
            event: X
            request: {url: "http://x.example/{{ a", method: FETCH}
        """, {"10-x.yaml": """
            hooks:
              - id: a
                event: X
                request: {url: "http://x.example/"}
            """})
    code, out, err = run(capsys, "check", "-c", str(tree.main))
    assert (code, out) == (EX_CONFIG, "")  # 78, as from `hookd run`: the unit won't restart
    main_file, other = tree.path("hookd.yaml"), tree.path("hooks.d/10-x.yaml")
    lines = err.splitlines()
    assert len(lines) == 5
    assert lines[0] == f"{main_file}:1: bogus: unknown key"
    assert lines[1].startswith(f"{main_file}:5: hooks[0].request.method: ")
    assert lines[2].startswith(f"{main_file}:5: hooks[0].request.url: template syntax: ")
    assert lines[3] == f"{other}:2: hooks[0].id: duplicate hook id 'a' (first at {main_file}:3)"
    assert lines[4] == "4 error(s)"


def test_check_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "check", "-c", str(tmp_path / "absent.yaml"))
    assert (code, out) == (EX_CONFIG, "")
    assert err == f"{tmp_path / 'absent.yaml'}: no such file\n1 error(s)\n"


def test_check_uses_hookd_config_env(capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKD_CONFIG", str(SAMPLE_CONFIG))
    code, out, _ = run(capsys, "check")
    assert code == 0
    assert out.splitlines()[-1] == "ok: 10 hook(s) from 5 file(s)"


# ------------------------------------------------------------------------- render

Check = Callable[[dict[str, Any]], None]


def json_body(expected: dict[str, Any]) -> Check:
    def check(req: dict[str, Any]) -> None:
        assert json.loads(req["body"]) == expected
    return check


def verified_by(*names: str) -> Check:
    def check(req: dict[str, Any]) -> None:
        assert len(req["headers"]["webhook-signature"].split(" ")) == len(names)
        for name in names:
            Webhook(secret(name)).verify(req["body"], req["headers"])
    return check


def header(name: str, value: Callable[[], str]) -> Check:
    def check(req: dict[str, Any]) -> None:
        assert req["headers"][name] == value()
    return check


def unsigned(req: dict[str, Any]) -> None:
    assert "webhook-signature" not in req["headers"]


def query(expected: list[tuple[str, str]]) -> Check:
    def check(req: dict[str, Any]) -> None:
        assert parse_qsl(urlsplit(req["url"]).query) == expected
        assert req["body"] == ""
    return check


def whole_payload(example: str) -> Check:
    return json_body(json.loads((EXAMPLES / example).read_text()))


BASE = "http://127.0.0.1:9900"
RENDERED: list[Any] = [
    pytest.param("answered.json", [(
        "crm-answered", "POST", f"{BASE}/crm/calls/m-91d2", [
            json_body({"call": "m-91d2", "agent": "Dana Ortiz", "queue": "Support",
                       "event": "Answered"}),
            header("authorization", lambda: "Bearer " + secret("crm_token")),
            header("x-source", lambda: "hookd"), verified_by("crm_whsec")])],
        id="answered"),
    pytest.param("leaving-abandoned.json", [
        ("queue-lifecycle", "POST", f"{BASE}/queue/leaving",
         [whole_payload("leaving-abandoned.json"), verified_by("crm_whsec")]),
        ("abandoned-long-wait", "POST", f"{BASE}/alerts/abandoned", [
            json_body({"member_call_id": "m-91d9", "queue_name": "Support", "waited_sec": 42,
                       "caller": "+15550111"}), unsigned])],
        id="leaving-fans-out"),
    pytest.param("dialer-member-end.json", [(
        "dialer-member-end", "POST", f"{BASE}/legacy/member-end", [
            json_body({"member_id": 'm-42"quoted"', "result": "success", "attempts": 3}),
            header("authorization", lambda: "Basic " + base64.b64encode(
                f"hookd:{secret('legacy_password')}".encode()).decode())])],
        id="dialer-member-end-raw-body"),
    pytest.param("call-ringing.json", [(
        "call-ringing-popup", "GET", None, [
            query([("uuid", "c-5d1e"), ("from", "+15550123"), ("to", "+15550199"),
                   ("direction", "incoming")])])],
        id="call-ringing-get"),
    pytest.param("call-reporting.json", [(
        "call-reporting-prod", "POST", f"{BASE}/billing/calls", [
            json_body({"call_id": "c-5d1e", "direction": "incoming", "from": "+15550123",
                       "to": "+15550199", "billed_sec": 179, "recording": None,
                       "kafka": {"partition": 0, "offset": 0}}),
            verified_by("billing_whsec", "billing_whsec_old")])],
        id="call-reporting-cloudevent-rotation"),
    pytest.param("ivr-start.json", [(
        "ivr-journey", "POST", f"{BASE}/analytics/ivr", [
            json_body({"uuid": "c-77aa", "ivr_name": "main-menu", "call_state": "ivr",
                       "created_at": "2026-11-21T10:21:00Z"})])],
        id="ivr-glob"),
    pytest.param("abandoned-conversation.json", [(
        "svc-abandoned", "POST", f"{BASE}/service/abandoned", [
            json_body({"customer_phone": "+15550177", "time_in_queue_sec": 95,
                       "timestamp": "2026-11-21T10:22:10Z", "queue": "billing"}),
            header("x-api-key", lambda: secret("service_key"))])],
        id="abandoned-conversation"),
    pytest.param("outbound-call.json", [(
        "svc-outbound", "POST", f"{BASE}/service/outbound", [
            json_body({"agent": "agent-17", "to": "+15550144", "at": "2026-11-21T10:23:00Z"}),
            header("x-api-key", lambda: secret("service_key"))])],
        id="outbound-call"),
    pytest.param("workitem-closed.json", [(
        "svc-workitem-closed", "PUT", f"{BASE}/service/workitems/wi-3001", [
            json_body({"id": "wi-3001", "mediaType": "email", "agent_name": "Dana Ortiz",
                       "agent_email": "dana@example.com", "completionCode": "RESOLVED",
                       "result": "resolved", "closedAt": "2026-11-21T10:24:00Z"})])],
        id="workitem-closed-dotted-map"),
]


def test_every_example_is_covered() -> None:
    covered = {p.values[0] for p in RENDERED}
    assert covered == {p.name for p in EXAMPLES.glob("*.json")}


@pytest.mark.parametrize(("example", "expected"), RENDERED)
def test_render_json_examples(capsys: pytest.CaptureFixture[str], example: str,
                              expected: list[tuple[str, str, str | None, list[Check]]]) -> None:
    before = int(time.time())
    code, out, err = run(capsys, "render", "-c", str(SAMPLE_CONFIG), "--event",
                         str(EXAMPLES / example), "--json", "--show-secrets")
    assert (code, err) == (0, "")
    requests = [json.loads(line) for line in out.splitlines()]
    assert [(r["hook"], r["method"]) for r in requests] == [(h, m) for h, m, _, _ in expected]
    for req, (_, _, url, checks) in zip(requests, expected, strict=True):
        assert set(req) == {"hook", "method", "url", "headers", "body"}
        if url is not None:
            assert req["url"] == url
        headers = req["headers"]
        assert headers["content-type"] == "application/json"
        assert headers["user-agent"] == USER_AGENT
        assert headers["webhook-id"].startswith("msg_")
        assert before <= int(headers["webhook-timestamp"]) <= int(time.time())
        for check in checks:
            check(req)


def test_render_webhook_id_is_stable_across_runs(capsys: pytest.CaptureFixture[str]) -> None:
    args = ("render", "-c", str(SAMPLE_CONFIG), "--event", str(EXAMPLES / "answered.json"),
            "--json")
    first = json.loads(run(capsys, *args)[1])["headers"]["webhook-id"]
    second = json.loads(run(capsys, *args)[1])["headers"]["webhook-id"]
    assert first == second


def test_render_only_one_hook(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "render", "-c", str(SAMPLE_CONFIG), "--event",
                       str(EXAMPLES / "leaving-abandoned.json"), "--json",
                       "--hook", "abandoned-long-wait")
    assert code == 0
    assert [json.loads(line)["hook"] for line in out.splitlines()] == ["abandoned-long-wait"]


@pytest.mark.parametrize(("flags", "api_key"), [
    pytest.param([], "demo…(redacted)", id="masked"),
    pytest.param(["--show-secrets"], secret("service_key"), id="show-secrets"),
])
def test_render_text_format(capsys: pytest.CaptureFixture[str], flags: list[str],
                            api_key: str) -> None:
    code, out, _ = run(capsys, "render", "-c", str(SAMPLE_CONFIG), "--event",
                       str(EXAMPLES / "outbound-call.json"), *flags)
    assert code == 0
    lines = out.splitlines()
    assert lines[:2] == ["# hook svc-outbound", f"POST {BASE}/service/outbound"]
    assert f"x-api-key: {api_key}" in lines
    assert "content-type: application/json" in lines
    assert lines[lines.index("") + 1] == (
        '{"agent": "agent-17", "to": "+15550144", "at": "2026-11-21T10:23:00Z"}')


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["--hook", "nope"], "no hook 'nope'", id="unknown-hook"),
    pytest.param(["--hook", "crm-answered"], "no enabled hook matches event 'OutboundCall'",
                 id="hook-does-not-match"),
])
def test_render_hook_errors(capsys: pytest.CaptureFixture[str], args: list[str],
                            message: str) -> None:
    code, out, err = run(capsys, "render", "-c", str(SAMPLE_CONFIG), "--event",
                         str(EXAMPLES / "outbound-call.json"), *args)
    assert (code, out) == (1, "")
    assert err.strip() == message


@pytest.mark.parametrize(("content", "message"), [
    pytest.param(b'{"event": "Nobody:Listens"}', "no enabled hook matches event 'Nobody:Listens'",
                 id="no-match"),
    pytest.param(b"not json", "{file}: value is not UTF-8 JSON: ", id="not-json"),
    pytest.param(b'{"no": "name"}', "{file}: no event name", id="no-name"),
])
def test_render_bad_events(capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes,
                           message: str) -> None:
    event_file = tmp_path / "event.json"
    event_file.write_bytes(content)
    code, out, err = run(capsys, "render", "-c", str(SAMPLE_CONFIG), "--event", str(event_file))
    assert (code, out) == (1, "")
    assert err.startswith(message.format(file=event_file)), err


def test_render_missing_event_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "render", "-c", str(SAMPLE_CONFIG), "--event",
                       str(tmp_path / "absent.json"))
    assert code == 1
    assert err.startswith(f"{tmp_path / 'absent.json'}: ")


def test_render_error_is_reported_and_other_hooks_still_render(
        capsys: pytest.CaptureFixture[str], write_config: WriteConfig) -> None:
    tree = write_config("""
        hooks:
          - id: broken
            event: X
            request: {url: "http://x.example/{{ missing_field }}"}
          - id: fine
            event: X
            auth: {type: oauth2, token_url: "https://id.example/token", client_id: c,
                   client_secret: s}
            request: {url: "http://x.example/ok"}
        """, extra={"event.json": '{"event": "X", "a": 1}'})
    code, out, err = run(capsys, "render", "-c", str(tree.main), "--event",
                         str(tree.root / "event.json"), "--json")
    assert code == 1
    assert err == "broken: render error: url template: 'missing_field' is undefined\n"
    (req,) = [json.loads(line) for line in out.splitlines()]
    assert req["hook"] == "fine"
    assert req["headers"]["authorization"].startswith("Bearer <token from oauth2")


def test_render_with_broken_config(capsys: pytest.CaptureFixture[str],
                                   write_config: WriteConfig) -> None:
    tree = write_config("bogus: 1\n")
    code, out, err = run(capsys, "render", "-c", str(tree.main), "--event",
                         str(EXAMPLES / "answered.json"))
    assert (code, out) == (EX_CONFIG, "")  # as from check and run
    assert err == f"{tree.main}:1: bogus: unknown key\n1 error(s)\n"


# ------------------------------------------------------------------------- schema


def test_schema_config(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema", "config")
    assert code == 0
    schema = json.loads(out)
    assert set(schema["properties"]) == {"kafka", "events", "delivery", "health", "logging",
                                         "shutdown_timeout", "hooks_dir", "hooks"}
    assert schema["additionalProperties"] is False
    request = schema["$defs"]["RequestConfig"]
    assert request["required"] == ["url"]
    assert request["properties"]["method"]["enum"] == ["GET", "POST", "PUT", "PATCH", "DELETE"]
    hook = schema["$defs"]["HookConfig"]
    assert set(hook["required"]) == {"id", "event", "request"}
    assert hook["properties"]["id"]["pattern"] == "^[A-Za-z0-9_.-]+$"
    timeout = schema["properties"]["shutdown_timeout"]
    assert timeout["type"] == "string"  # with its unit: a bare number is refused
    pattern = re.compile(timeout["pattern"])
    assert all(pattern.match(d) for d in ("250ms", "5s", " 1h30m ", "1.5d"))
    assert not any(pattern.match(d) for d in ("30", "5 s", "5sec", "-1s"))


def test_schema_events(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema", "events")
    assert code == 0
    schema = json.loads(out)
    assert schema["title"] == "hookd events"
    assert {"Answered", "Call:Reporting", "WorkItemClosed", "custom"} <= set(schema["$defs"])
    assert schema["$defs"]["Leaving"]["properties"]["result"] == {"type": "string"}


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == "hookd 0.1.0\n"


@pytest.mark.parametrize("argv", [[], ["schema", "nope"], ["render", "-c", "x"], ["frobnicate"],
                                  ["run", "--health-listen", "8082"],
                                  ["run", "--health-listen", "127.0.0.1:99999"],
                                  ["replay", "--status", "600"], ["replay", "--limit", "0"],
                                  ["replay", "--error-kind", "oops"],
                                  ["replay", "--since", "yesterday"]])
def test_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "usage: hookd" in capsys.readouterr().err


def test_run_passes_health_listen_to_the_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str | None]] = []
    monkeypatch.setattr("hookd.service.process.run_daemon",
                        lambda path, listen=None: seen.append((path, listen)) or 0)
    assert main(["run", "-c", "/etc/hookd/a.yaml", "--health-listen", "127.0.0.1:8082"]) == 0
    assert main(["run", "-c", "/etc/hookd/a.yaml"]) == 0
    assert seen == [("/etc/hookd/a.yaml", "127.0.0.1:8082"), ("/etc/hookd/a.yaml", None)]


# ------------------------------------------------------------- secrets masked in render

SECRET_ENV = {"HOOKD_T_KEY": "ak_live_5f4dcc3b5aa765d6", "HOOKD_T_TOKEN": "tok+en/Zm9v=bar=",
              "HOOKD_T_BODY": "body-secret-77aa9c"}
SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _secret_tree(write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    tree = write_config(f"""
        hooks:
          - id: keyed
            event: Answered
            request:
              url: "https://crm.example.com/items/{{{{ id }}}}?token=${{env:HOOKD_T_TOKEN}}"
              query: {{t: "${{env:HOOKD_T_TOKEN}}"}}
              body: '{{"k": "${{env:HOOKD_T_BODY}}", "id": {{{{ id|tojson }}}}}}'
            auth: {{type: api_key, value: "${{env:HOOKD_T_KEY}}"}}
            signing: {{secret: "{SIGNING}"}}
          - id: raw-base
            event: Answered
            request: {{url: "{{{{ base|url_raw }}}}/x"}}
        """)
    return tree.main


def test_render_masks_every_credential(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       write_config: WriteConfig,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from hookd.telemetry.redact import url_forms

    config = _secret_tree(write_config, monkeypatch)
    event_file = tmp_path / "event.json"
    event_file.write_text('{"event": "Answered", "id": "a/b", "base": "https://b.example"}')
    secrets = [*SECRET_ENV.values(), SIGNING]
    forms = {form for value in secrets for form in url_forms(value)}
    outputs = {}
    for flags in ([], ["--json"], ["--show-secrets"], ["--json", "--show-secrets"]):
        code, out, err = run(capsys, "render", "-c", str(config), "--event", str(event_file),
                             "--hook", "keyed", *flags)
        assert (code, err) == (0, "")
        outputs[" ".join(flags)] = out
    for masked in ("", "--json"):
        assert [f for f in forms if f in outputs[masked]] == [], masked
    assert outputs[""].splitlines()[1:3] == [
        "POST https://crm.example.com/items/a%2Fb?token=tok+…(redacted)&t=tok%…(redacted)",
        "x-api-key: ak_l…(redacted)"]
    assert '{"k": "body…(redacted)", "id": "a/b"}' in outputs[""]
    request = json.loads(outputs["--json --show-secrets"])
    assert request["headers"]["x-api-key"] == SECRET_ENV["HOOKD_T_KEY"]
    assert request["url"] == ("https://crm.example.com/items/a%2Fb?token=tok+en/Zm9v=bar="
                              "&t=tok%2Ben/Zm9v%3Dbar%3D")
    assert f"x-api-key: {SECRET_ENV['HOOKD_T_KEY']}" in outputs["--show-secrets"]


def test_check_lists_hooks_that_opt_out_of_url_encoding(
        capsys: pytest.CaptureFixture[str], write_config: WriteConfig,
        monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run(capsys, "check", "-c", str(_secret_tree(write_config, monkeypatch)))
    assert (code, err) == (0, "")
    assert out.splitlines()[-2:] == [
        "not encoded: the url of raw-base uses |url_raw (that value must come from trusted "
        "config, never from events)", "ok: 2 hook(s) from 1 file(s)"]
    assert [v for v in (*SECRET_ENV.values(), SIGNING) if v in out] == []


def test_render_of_the_sample_shows_no_secret(capsys: pytest.CaptureFixture[str]) -> None:
    values = [p.read_text().strip() for p in SECRETS.iterdir() if p.name != "README"]
    values.append(base64.b64encode(f"hookd:{secret('legacy_password')}".encode()).decode())
    for example in EXAMPLES.glob("*.json"):
        for flags in ([], ["--json"]):
            code, out, err = run(capsys, "render", "-c", str(SAMPLE_CONFIG), "--event",
                                 str(example), *flags)
            assert code == 0, err
            assert [v for v in values if v in out + err] == [], example.name
