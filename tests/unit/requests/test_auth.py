"""Authentication headers and the secrets they carry."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import TypeAdapter

from hookd.config import Auth
from hookd.pipeline.runtime import load_config
from hookd.requests.auth import auth_secrets, static_auth_headers
from tests.unit.conftest import WriteConfig

AUTH: TypeAdapter[Any] = TypeAdapter(Auth)


@pytest.mark.parametrize(("spec", "headers", "secrets"), [
    pytest.param({"type": "api_key", "value": "k-123"}, (("x-api-key", "k-123"),), {"k-123"},
                 id="api-key-default-header"),
    pytest.param({"type": "api_key", "header": "X-Service-Key", "value": "k-456"},
                 (("X-Service-Key", "k-456"),), {"k-456"}, id="api-key-custom-header"),
    pytest.param({"type": "basic", "username": "hookd", "password": "demo-legacy-password"},
                 (("authorization", "Basic aG9va2Q6ZGVtby1sZWdhY3ktcGFzc3dvcmQ="),),
                 {"demo-legacy-password", "aG9va2Q6ZGVtby1sZWdhY3ktcGFzc3dvcmQ="},
                 id="basic"),
    pytest.param({"type": "basic", "username": "zoë", "password": "pässwörd:x"},
                 (("authorization", "Basic em/Dqzpww6Rzc3fDtnJkOng="),),
                 {"pässwörd:x", "em/Dqzpww6Rzc3fDtnJkOng="}, id="basic-utf8-and-colon"),
    pytest.param({"type": "basic", "username": "anonymous", "password": ""},
                 (("authorization", "Basic YW5vbnltb3VzOg=="),), set(), id="basic-no-password"),
    pytest.param({"type": "bearer", "token": "tok-789"}, (("authorization", "Bearer tok-789"),),
                 {"tok-789"}, id="bearer"),
    pytest.param({"type": "oauth2", "token_url": "https://id.example/token", "client_id": "cid",
                  "client_secret": "cs-000"}, (), {"cs-000"}, id="oauth2-at-send-time"),
])
def test_auth_headers_and_secrets(spec: dict[str, str], headers: tuple[tuple[str, str], ...],
                                  secrets: set[str]) -> None:
    auth = AUTH.validate_python(spec)
    assert static_auth_headers(auth) == headers
    assert auth_secrets(auth) == secrets


def test_basic_token_is_standard_base64() -> None:
    auth = AUTH.validate_python({"type": "basic", "username": "u", "password": "p w"})
    ((_, value),) = static_auth_headers(auth)
    assert base64.b64decode(value.removeprefix("Basic ")) == b"u:p w"


def test_no_auth() -> None:
    assert static_auth_headers(None) == ()
    assert auth_secrets(None) == set()


def test_auth_header_is_sent_and_secrets_collected(write_config: WriteConfig) -> None:
    tree = write_config("""
        hooks:
          - id: svc
            event: X
            auth: {type: api_key, value: "${file:secrets/service_key}"}
            request: {url: "http://x.example/"}
          - id: legacy
            event: X
            auth: {type: basic, username: hookd, password: "${env:LEGACY_PASSWORD}"}
            request: {url: "http://x.example/"}
          - id: crm
            event: X
            auth: {type: bearer, token: "${cred:crm_token}"}
            request: {url: "http://x.example/"}
        """, extra={"secrets/service_key": "svc-key-1\n", "creds/crm_token": "crm-token-2"})
    runtime = load_config(tree.main, environ={"LEGACY_PASSWORD": "legacy-pass-3",
                                              "CREDENTIALS_DIRECTORY": str(tree.root / "creds")})
    svc, legacy, crm = runtime.hooks
    assert svc.static_headers == (("x-api-key", "svc-key-1"),)
    token = base64.b64encode(b"hookd:legacy-pass-3").decode()
    assert legacy.static_headers == (("authorization", f"Basic {token}"),)
    assert crm.static_headers == (("authorization", "Bearer crm-token-2"),)
    assert {"svc-key-1", "legacy-pass-3", token, "crm-token-2"} <= runtime.secrets
