"""Config checks added after the foundation: auth headers against user headers, line breaks in
auth values, unpadded Standard Webhooks secrets."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook

from hookd.config import signing_key
from hookd.errors import ConfigIssue
from hookd.pipeline.runtime import load_config
from hookd.requests.signing import Signer
from tests.unit.conftest import WriteConfig

HOOK = """
hooks:
  - id: crm
    event: Answered
    auth: AUTH
    request:
      url: http://crm.example/calls
      headers:
        X-Source: hookd
        NAME: "{{ event }}"
"""
AUTH_LINE, HEADER_LINE = 4, 9

API_KEY = "{type: api_key, header: HEADER, value: k-123456789}"
BEARER = "{type: bearer, token: t-123456789}"
BASIC = "{type: basic, username: u, password: p-123456789}"


def conflict(auth: str, name: str) -> object:
    marks: list[pytest.MarkDecorator] = []
    kind = auth.split(",")[0].removeprefix("{type: ")
    header = auth.split("header: ")[1].split(",")[0] if "header: " in auth else "authorization"
    return pytest.param(auth, name, marks=marks, id=f"{kind}:{header}-vs-{name}")


CONFLICTS = [
    conflict(API_KEY.replace("HEADER", "x-api-key"), "x-api-key"),
    conflict(API_KEY.replace("HEADER", "x-api-key"), "X-Api-Key"),
    conflict(API_KEY.replace("HEADER", "X-Api-Key"), "x-api-key"),
    conflict(API_KEY.replace("HEADER", "X-Api-Key"), "X-Api-Key"),
    conflict(BEARER, "authorization"),
    conflict(BEARER, "Authorization"),
    conflict(BASIC, "authorization"),
    conflict(BASIC, "AUTHORIZATION"),
]


@pytest.mark.parametrize(("auth", "name"), CONFLICTS)
def test_auth_header_and_a_user_header_of_the_same_name(write_config: WriteConfig, auth: str,
                                                        name: str) -> None:
    tree = write_config(HOOK.replace("AUTH", auth).replace("NAME", name))
    issues = tree.issues()
    assert len(issues) == 1, issues
    (issue,) = issues
    assert issue.file == tree.path("hookd.yaml")
    assert issue.line == HEADER_LINE  # at that header, not at its parent `headers:`
    assert issue.path.lower() == f"hooks[0].request.headers.{name.lower()}"
    assert "also set by auth" in issue.message


@pytest.mark.parametrize("auth", [API_KEY.replace("HEADER", "x-api-key"), BEARER, BASIC])
def test_auth_with_other_user_headers_is_fine(write_config: WriteConfig, auth: str) -> None:
    tree = write_config(HOOK.replace("AUTH", auth).replace("NAME", "X-Call"))
    runtime = load_config(tree.main, environ={})
    assert runtime.hooks[0].id == "crm"


@pytest.mark.parametrize(("auth", "value"), [
    ("{type: api_key, value: '${env:X}'}", "abc\ndef"),
    ("{type: api_key, value: '${env:X}'}", "abc\r\nX-Injected: 1"),
    ("{type: api_key, value: '${env:X}'}", "trailing-newline\n"),
    ("{type: bearer, token: '${env:X}'}", "abc\ndef"),
    ("{type: bearer, token: '${env:X}'}", "abc\rdef"),
], ids=["api_key-lf", "api_key-crlf", "api_key-trailing-lf", "bearer-lf", "bearer-cr"])
def test_auth_value_with_a_line_break_is_a_config_error(write_config: WriteConfig, auth: str,
                                                       value: str) -> None:
    tree = write_config(HOOK.replace("AUTH", auth).replace("NAME", "X-Call"))
    (issue,) = tree.issues({"X": value})
    assert issue.line == AUTH_LINE
    assert issue.path == "hooks[0].auth"
    assert "CR, LF or NUL" in issue.message
    assert value.strip() not in str(issue)  # the secret is not printed


def test_basic_password_with_a_line_break_is_fine(write_config: WriteConfig) -> None:
    """The password travels base64-encoded: a line break cannot split the header."""
    auth = "{type: basic, username: u, password: '${env:X}'}"
    tree = write_config(HOOK.replace("AUTH", auth).replace("NAME", "X-Call"))
    runtime = load_config(tree.main, environ={"X": "p\nq"})
    ((name, value),) = runtime.hooks[0].static_headers
    assert name == "authorization" and "\n" not in value


@pytest.mark.parametrize("header", ["x key", "x-key:", "${env:H}"])
def test_api_key_header_must_be_a_header_name(write_config: WriteConfig, header: str) -> None:
    auth = f"{{type: api_key, header: '{header}', value: k-123456789}}"
    tree = write_config(HOOK.replace("AUTH", auth).replace("NAME", "X-Call"))
    issues: list[ConfigIssue] = tree.issues({"H": "x-key\nInjected"})
    assert [(i.line, i.path) for i in issues] == [(AUTH_LINE, "hooks[0].auth.header")]


# ------------------------------------------------------------------------- whsec padding

KEYS = [bytes(range(32)), bytes(range(16)), bytes(range(100, 133)), b"\xff" * 20]


@pytest.mark.parametrize("key", KEYS, ids=[f"{len(k)}-bytes" for k in KEYS])
def test_unpadded_whsec_secret_is_accepted_and_signs_like_the_padded_one(
        write_config: WriteConfig, key: bytes) -> None:
    padded = "whsec_" + base64.b64encode(key).decode()
    unpadded = padded.rstrip("=")
    assert signing_key(unpadded) == signing_key(padded) == key
    tree = write_config(f"""
        hooks:
          - id: padded
            event: Answered
            request: {{url: "http://crm.example/a"}}
            signing: {{secret: "{padded}"}}
          - id: unpadded
            event: Answered
            request: {{url: "http://crm.example/a"}}
            signing: {{secret: "${{env:WHSEC}}"}}
        """)
    runtime = load_config(tree.main, environ={"WHSEC": unpadded})
    signers = {h.id: h.signer for h in runtime.hooks}
    a, b = signers["padded"], signers["unpadded"]
    assert isinstance(a, Signer) and isinstance(b, Signer)
    assert a.keys == b.keys == (key,)
    body = b'{"call": "c-1"}'
    now = int(time.time())
    signature = b.signature("msg_1", now, body)
    assert signature == a.signature("msg_1", now, body)
    assert unpadded in runtime.secrets  # masked in logs like any secret
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now),
               "webhook-signature": signature}
    for secret in (padded, unpadded):
        assert Webhook(secret).verify(body, headers) == {"call": "c-1"}


def test_a_secret_that_is_not_base64_is_still_an_error(write_config: WriteConfig) -> None:
    tree = write_config("""
        hooks:
          - id: h
            event: Answered
            request: {url: "http://crm.example/a"}
            signing: {secret: "whsec_not*base64!"}
        """)
    (issue,) = tree.issues()
    assert issue.line == 5 and "base64" in issue.message
